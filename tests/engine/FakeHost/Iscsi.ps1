# The iSCSI module of the fake host (Microsoft iSCSI Initiator): target portals, discovered
# targets, sessions and their connections, logins through the CIM method MSFT_iSCSITarget.Connect,
# logouts. Dot-sourced by FakeHost.psm1.
#
# state.iscsi (tests/contract/README.md, smbvol/testing/iscsi.py): initiator (IQN),
# service_running, mpio, portals (what the initiator knows, "addr:port" / "[v6]:port"), targets
# ({iqn: {portals, reachable, allowed, credential: {username, password_sha256} | null,
# luns: {LUN: disk number}}} - the storage network), sessions ([{id, target_iqn, portal,
# persistent}]), offline_disks, online_disks. The MSiSCSI service is state.services.MSiSCSI
# when the runner gives it, else iscsi.service_running.
#
# Failures are the initiator's status codes (iscsierr.h, ISDSC_*), surfaced as Windows does:
# the CDXML cmdlets write a CimException with error id 'HRESULT 0xefffxxxx' (category
# NotSpecified); CimSession.InvokeMethod throws the CimException (MSFT_WmiError data error_Code =
# the status), which PowerShell wraps in a MethodInvocationException.

$script:IscsiNamespace = 'ROOT/Microsoft/Windows/Storage'
$script:IscsiStatus = @{
    ConnectionFailed = @(0xEFFF0003L, 'Connection Failed.')
    AuthenticationFailure = @(0xEFFF0009L, 'Authentication Failure.')
    AuthorizationFailure = @(0xEFFF000AL, 'Authorization Failure.')
    InvalidSessionId = @(0xEFFF001CL, 'Invalid Session Id.')
    TargetNotFound = @(0xEFFF0029L, 'The target name is not found or is marked as hidden from login.')
    ServiceNotRunning = @(0xEFFF003EL, 'The Microsoft iSCSI Initiator Service is not running. Please start the service and retry.')
    AlreadyLoggedIn = @(0xEFFF003FL, 'The target has already been logged in via an iSCSI session.')
    DeviceBusy = @(0xEFFF0040L, 'The session cannot be logged out since a device on that session is currently being used.')
}

# --------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------

function Get-FakeIscsi {
    # state.iscsi, with its lists and maps present.
    $iscsi = Get-FakeStateTable -Name 'iscsi'
    foreach ($name in @('portals', 'sessions', 'offline_disks', 'online_disks')) {
        if (-not $iscsi.ContainsKey($name) -or $null -eq $iscsi[$name]) {
            $iscsi[$name] = @()
        }
    }
    if (-not $iscsi.ContainsKey('targets') -or $null -eq $iscsi['targets']) {
        $iscsi['targets'] = @{}
    }
    return $iscsi
}

function Get-FakeIscsiList {
    param([string]$Name)
    return @((Get-FakeIscsi)[$Name] | Where-Object { $null -ne $_ } | ForEach-Object { [long]$_ })
}

function Get-FakeInitiatorIqn {
    $iscsi = Get-FakeIscsi
    if (-not [string]::IsNullOrEmpty([string]$iscsi['initiator'])) {
        return [string]$iscsi['initiator']
    }
    $hostInfo = Get-FakeHost
    $name = [string]$hostInfo['name']
    if (-not [string]::IsNullOrEmpty([string]$hostInfo['domain'])) {
        $name = $name + '.' + [string]$hostInfo['domain']
    }
    return 'iqn.1991-05.com.microsoft:' + $name.ToLowerInvariant()
}

function Test-FakeIscsiServiceRunning {
    $state = Get-FakeState
    if ($state.ContainsKey('services') -and $null -ne $state['services']) {
        foreach ($key in @($state['services'].Keys)) {
            if ([string]::Equals([string]$key, 'MSiSCSI', [System.StringComparison]::OrdinalIgnoreCase)) {
                return ([string]$state['services'][$key]['status'] -eq 'Running')
            }
        }
    }
    $iscsi = Get-FakeIscsi
    return (-not $iscsi.ContainsKey('service_running') -or $null -eq $iscsi['service_running'] -or [bool]$iscsi['service_running'])
}

function ConvertFrom-FakePortalText {
    # "addr:port", "[v6]:port", "addr" -> @{ address; port; key } (key: IP addresses in their
    # canonical form, names lower case).
    param([string]$Text)
    $match = [regex]::Match($Text, '^\[([^\]]+)\](?::([0-9]+))?$')
    if (-not $match.Success) {
        $match = [regex]::Match($Text, '^([^:]+)(?::([0-9]+))?$')
    }
    if (-not $match.Success) {
        return @{ address = $Text; port = 3260; key = $Text.ToLowerInvariant() + ':3260' }
    }
    $port = 3260
    if ($match.Groups[2].Success) {
        $port = [int]$match.Groups[2].Value
    }
    return New-FakePortal -Address $match.Groups[1].Value -Port $port
}

function New-FakePortal {
    param([string]$Address, [int]$Port)
    $canonical = $Address.ToLowerInvariant()
    $parsed = $null
    if ([System.Net.IPAddress]::TryParse($Address.Split('%')[0], [ref]$parsed)) {
        $canonical = $parsed.ToString()
    }
    $text = $Address + ':' + [string]$Port
    if ($Address.Contains(':')) {
        $text = '[' + $canonical + ']:' + [string]$Port
    }
    return @{ address = $Address; port = $Port; key = $canonical + ':' + [string]$Port; text = $text }
}

function Find-FakeIscsiTarget {
    # The state's name of target $Iqn (IQNs compare case-insensitively), or $null.
    param([string]$Iqn)
    $targets = (Get-FakeIscsi)['targets']
    foreach ($key in @($targets.Keys)) {
        if ([string]::Equals([string]$key, $Iqn, [System.StringComparison]::OrdinalIgnoreCase)) {
            return [string]$key
        }
    }
    return $null
}

function Test-FakeTargetOnPortal {
    param([string]$Iqn, [string]$PortalKey)
    $target = (Get-FakeIscsi)['targets'][$Iqn]
    foreach ($portal in @($target['portals'])) {
        if ((ConvertFrom-FakePortalText -Text ([string]$portal)).key -eq $PortalKey) {
            return $true
        }
    }
    return $false
}

function Test-FakeTargetReachable {
    param([string]$Iqn)
    $target = (Get-FakeIscsi)['targets'][$Iqn]
    return (-not $target.ContainsKey('reachable') -or $null -eq $target['reachable'] -or [bool]$target['reachable'])
}

function Test-FakePortalAnswers {
    # A portal answers (TCP and SendTargets) when a reachable target of the storage is behind it.
    param([string]$PortalKey)
    foreach ($iqn in @((Get-FakeIscsi)['targets'].Keys)) {
        if ((Test-FakeTargetReachable -Iqn $iqn) -and (Test-FakeTargetOnPortal -Iqn $iqn -PortalKey $PortalKey)) {
            return $true
        }
    }
    return $false
}

function Get-FakeKnownPortals {
    # The initiator's target portals: @{ address; port; key; text; index } per state entry.
    $out = Microsoft.PowerShell.Utility\New-Object -TypeName System.Collections.Generic.List[object]
    $i = 0
    foreach ($text in @((Get-FakeIscsi)['portals'])) {
        if ($null -ne $text) {
            $portal = ConvertFrom-FakePortalText -Text ([string]$text)
            $portal['index'] = $i
            $portal['text'] = [string]$text
            $out.Add($portal)
        }
        $i++
    }
    return $out.ToArray()
}

function Get-FakeDiscoveredTargets {
    # The targets the initiator knows: offered by a known portal that answers, or logged in.
    $out = Microsoft.PowerShell.Utility\New-Object -TypeName System.Collections.Generic.List[string]
    $known = @(Get-FakeKnownPortals)
    foreach ($iqn in @((Get-FakeIscsi)['targets'].Keys)) {
        $listed = (@(Get-FakeIscsiSessionsOf -Iqn $iqn).Count -gt 0)
        if (-not $listed -and (Test-FakeTargetReachable -Iqn $iqn)) {
            foreach ($portal in $known) {
                if (Test-FakeTargetOnPortal -Iqn $iqn -PortalKey $portal.key) {
                    $listed = $true
                }
            }
        }
        if ($listed) {
            $out.Add([string]$iqn)
        }
    }
    $out.Sort([System.StringComparer]::OrdinalIgnoreCase)
    return $out.ToArray()
}

function Get-FakeIscsiSessionsOf {
    param([string]$Iqn)
    return @((Get-FakeIscsi)['sessions'] | Where-Object { $null -ne $_ -and [string]::Equals([string]$_['target_iqn'], $Iqn, [System.StringComparison]::OrdinalIgnoreCase) })
}

function Find-FakeIscsiSession {
    param([string]$SessionIdentifier)
    foreach ($session in @((Get-FakeIscsi)['sessions'])) {
        if ($null -ne $session -and [string]::Equals([string]$session['id'], $SessionIdentifier, [System.StringComparison]::OrdinalIgnoreCase)) {
            return $session
        }
    }
    return $null
}

function Get-FakeSessionDisks {
    # The disks reached through session $SessionIdentifier: every LUN of its target.
    param([string]$SessionIdentifier)
    $session = Find-FakeIscsiSession -SessionIdentifier $SessionIdentifier
    if ($null -eq $session) {
        return
    }
    foreach ($disk in @(Get-FakeHostDisks)) {
        if ($disk.kind -eq 'iscsi' -and [string]::Equals([string]$disk.iqn, [string]$session['target_iqn'], [System.StringComparison]::OrdinalIgnoreCase)) {
            $disk
        }
    }
}

function New-FakeSessionId {
    $ids = @((Get-FakeIscsi)['sessions'] | Where-Object { $null -ne $_ } | ForEach-Object { [string]$_['id'] })
    $n = $ids.Count + 1
    while ($true) {
        $id = 'ffffe000b1c4e010-40000137000000' + $n.ToString('x2')
        if ($ids -notcontains $id) {
            return $id
        }
        $n++
    }
}

function Get-FakeHostSourceAddress {
    # The address the initiator's connections leave from: the host's first IPv4 address.
    foreach ($address in @((Get-FakeHost)['addresses'])) {
        if ($null -ne $address -and -not ([string]$address).Contains(':')) {
            return [string]$address
        }
    }
    return '0.0.0.0'
}

# --------------------------------------------------------------------------------------------
# Objects (root/Microsoft/Windows/Storage)
# --------------------------------------------------------------------------------------------

function New-FakeIscsiSessionInstance {
    param([hashtable]$Session)
    $number = 1
    $match = [regex]::Match([string]$Session['id'], '([0-9a-fA-F]{1,4})$')
    if ($match.Success) {
        $number = [System.Convert]::ToInt32($match.Groups[1].Value, 16)
    }
    return New-FakeCimInstance -ClassName 'MSFT_iSCSISession' -Namespace $script:IscsiNamespace -Property ([ordered]@{
        AuthenticationType = 'NONE'
        InitiatorInstanceName = 'ROOT\ISCSIPRT\0000_0'
        InitiatorNodeAddress = Get-FakeInitiatorIqn
        InitiatorPortalAddress = Get-FakeHostSourceAddress
        InitiatorSideIdentifier = '400001370000'
        IsConnected = $true
        IsDataDigest = $false
        IsDiscovered = $true
        IsHeaderDigest = $false
        IsPersistent = [bool]$Session['persistent']
        NumberOfConnections = [uint32]1
        SessionIdentifier = [string]$Session['id']
        TargetNodeAddress = [string]$Session['target_iqn']
        TargetSideIdentifier = $number.ToString('x4')
    })
}

function New-FakeIscsiConnectionInstance {
    param([hashtable]$Session)
    $portal = ConvertFrom-FakePortalText -Text ([string]$Session['portal'])
    $address = $portal.address
    $parsed = $null
    if ([System.Net.IPAddress]::TryParse($address, [ref]$parsed)) {
        $address = $parsed.ToString()
    }
    return New-FakeCimInstance -ClassName 'MSFT_iSCSIConnection' -Namespace $script:IscsiNamespace -Property ([ordered]@{
        ConnectionIdentifier = [string]$Session['id'] + '-0x1'
        InitiatorAddress = Get-FakeHostSourceAddress
        InitiatorPortNumber = [uint16]49670
        TargetAddress = $address
        TargetPortNumber = [uint16]$portal.port
    })
}

function New-FakeIscsiTargetInstance {
    param([string]$Iqn)
    return New-FakeCimInstance -ClassName 'MSFT_iSCSITarget' -Namespace $script:IscsiNamespace -Property ([ordered]@{
        IsConnected = (@(Get-FakeIscsiSessionsOf -Iqn $Iqn).Count -gt 0)
        NodeAddress = $Iqn
    })
}

function New-FakeIscsiTargetPortalInstance {
    param([hashtable]$Portal)
    return New-FakeCimInstance -ClassName 'MSFT_iSCSITargetPortal' -Namespace $script:IscsiNamespace -Property ([ordered]@{
        InitiatorInstanceName = $null
        InitiatorPortalAddress = $null
        IsDataDigest = $false
        IsHeaderDigest = $false
        TargetPortalAddress = $Portal.address
        TargetPortalPortNumber = [uint16]$Portal.port
    })
}

# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------

function New-FakeIscsiCimException {
    # The CimException of an initiator status (MSFT_WmiError: error_Code, error_Type HRESULT,
    # MessageId 'HRESULT 0xefffxxxx').
    param([string]$Status)
    $code = [long]$script:IscsiStatus[$Status][0]
    $message = [string]$script:IscsiStatus[$Status][1]
    $messageId = 'HRESULT 0x' + $code.ToString('x8')
    $exception = New-FakeCimException -Message $message -Status 'Failed' -ErrorCode ([uint32]$code) -MessageId $messageId
    $exception.ErrorData.CimInstanceProperties.Set('error_Type', 'HRESULT')
    $exception.ErrorData.CimInstanceProperties.Set('error_WindowsErrorMessage', $message)
    return $exception
}

function New-FakeIscsiRecord {
    # The error a CDXML iSCSI cmdlet writes for an initiator status: FullyQualifiedErrorId
    # 'HRESULT 0xefff0003,New-IscsiTargetPortal', category NotSpecified, CimException.
    param([string]$Status, [string]$ClassName)
    $exception = New-FakeIscsiCimException -Status $Status
    $target = New-FakeCimInstance -ClassName $ClassName -Namespace $script:IscsiNamespace
    return New-FakeErrorRecord -Exception $exception -ErrorId ([string]$exception.ErrorData.CimInstanceProperties['MessageId'].Value) -Category 'NotSpecified' -Target $target
}

function Assert-FakeIscsiService {
    # The initiator's answer while MSiSCSI is stopped (ISDSC_SERVICE_NOT_RUNNING); $false then.
    param($Cmdlet, [string]$ClassName)
    if (Test-FakeIscsiServiceRunning) {
        return $true
    }
    Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakeIscsiRecord -Status 'ServiceNotRunning' -ClassName $ClassName)
    return $false
}

# --------------------------------------------------------------------------------------------
# Target portals
# --------------------------------------------------------------------------------------------

function Find-FakeKnownPortal {
    param([string]$Address, [int]$Port)
    $wanted = New-FakePortal -Address $Address -Port $Port
    foreach ($portal in @(Get-FakeKnownPortals)) {
        if ($portal.key -eq $wanted.key) {
            return $portal
        }
    }
    return $null
}

Register-FakeCmdlet -Name 'Get-IscsiTargetPortal' -Body {
    param($Cmdlet, $Set, $P)
    if (-not (Assert-FakeIscsiService -Cmdlet $Cmdlet -ClassName 'MSFT_iSCSITargetPortal')) {
        return
    }
    $portals = @(Get-FakeKnownPortals)
    if ($P.ContainsKey('TargetPortalPortNumber')) {
        $ports = @($P['TargetPortalPortNumber'] | ForEach-Object { [int]$_ })
        $portals = @($portals | Where-Object { $ports -contains [int]$_.port })
    }
    if ($P.ContainsKey('TargetPortalAddress')) {
        foreach ($address in @($P['TargetPortalAddress'])) {
            $hits = @($portals | Where-Object { [string]::Equals([string]$_.address, [string]$address, [System.StringComparison]::OrdinalIgnoreCase) })
            if ($hits.Count -eq 0) {
                Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakeNotFoundRecord -ClassName 'MSFT_iSCSITargetPortal' -PropertyName 'TargetPortalAddress' -Value ([string]$address))
                continue
            }
            foreach ($portal in $hits) {
                New-FakeIscsiTargetPortalInstance -Portal $portal
            }
        }
        return
    }
    foreach ($portal in $portals) {
        New-FakeIscsiTargetPortalInstance -Portal $portal
    }
}

Register-FakeCmdlet -Name 'New-IscsiTargetPortal' -Body {
    # AddIScsiSendTargetPortal: connects to the portal and runs SendTargets discovery; a portal
    # that does not answer is ISDSC_CONNECTION_FAILED and is not added.
    param($Cmdlet, $Set, $P)
    if (-not (Assert-FakeIscsiService -Cmdlet $Cmdlet -ClassName 'MSFT_iSCSITargetPortal')) {
        return
    }
    $port = 3260
    if ($P.ContainsKey('TargetPortalPortNumber')) {
        $port = [int]$P['TargetPortalPortNumber']
    }
    $portal = New-FakePortal -Address ([string]$P['TargetPortalAddress']) -Port $port
    $known = Find-FakeKnownPortal -Address $portal.address -Port $port
    if ($null -ne $known) {
        return (New-FakeIscsiTargetPortalInstance -Portal $known)
    }
    if (-not (Test-FakePortalAnswers -PortalKey $portal.key)) {
        Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakeIscsiRecord -Status 'ConnectionFailed' -ClassName 'MSFT_iSCSITargetPortal')
        return
    }
    $iscsi = Get-FakeIscsi
    $iscsi['portals'] = @(@($iscsi['portals']) + $portal.text)
    Save-FakeState
    return (New-FakeIscsiTargetPortalInstance -Portal $portal)
}

function Get-FakePortalsFromParameters {
    # The known portals a -TargetPortalAddress/-TargetPortalPortNumber or -InputObject call
    # names; a name that matches none is the CDXML query's "not found" error.
    param($Cmdlet, [System.Collections.IDictionary]$P)
    $wanted = Microsoft.PowerShell.Utility\New-Object -TypeName System.Collections.Generic.List[object]
    if ($P.ContainsKey('InputObject')) {
        foreach ($item in @($P['InputObject'])) {
            $wanted.Add(@{ address = [string]$item.TargetPortalAddress; port = [int]$item.TargetPortalPortNumber })
        }
    } else {
        foreach ($address in @($P['TargetPortalAddress'])) {
            $port = 0
            if ($P.ContainsKey('TargetPortalPortNumber')) {
                $port = [int]$P['TargetPortalPortNumber']
            }
            $wanted.Add(@{ address = [string]$address; port = $port })
        }
    }
    foreach ($one in $wanted) {
        $hits = @(Get-FakeKnownPortals | Where-Object { (New-FakePortal -Address $one.address -Port $_.port).key -eq $_.key -and ($one.port -eq 0 -or $one.port -eq [int]$_.port) })
        if ($hits.Count -eq 0) {
            Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakeNotFoundRecord -ClassName 'MSFT_iSCSITargetPortal' -PropertyName 'TargetPortalAddress' -Value $one.address)
            continue
        }
        $hits
    }
}

Register-FakeCmdlet -Name 'Remove-IscsiTargetPortal' -Body {
    param($Cmdlet, $Set, $P)
    if (-not (Assert-FakeIscsiService -Cmdlet $Cmdlet -ClassName 'MSFT_iSCSITargetPortal')) {
        return
    }
    foreach ($portal in @(Get-FakePortalsFromParameters -Cmdlet $Cmdlet -P $P)) {
        if (-not $Cmdlet.ShouldProcess($portal.text, 'Remove')) {
            continue
        }
        $iscsi = Get-FakeIscsi
        $remaining = Microsoft.PowerShell.Utility\New-Object -TypeName System.Collections.Generic.List[object]
        foreach ($text in @($iscsi['portals'])) {
            if ($null -ne $text -and (ConvertFrom-FakePortalText -Text ([string]$text)).key -ne $portal.key) {
                $remaining.Add([string]$text)
            }
        }
        $iscsi['portals'] = @($remaining.ToArray())
        Save-FakeState
        if ($P.ContainsKey('PassThru')) {
            New-FakeIscsiTargetPortalInstance -Portal $portal
        }
    }
}

Register-FakeCmdlet -Name 'Update-IscsiTargetPortal' -Body {
    # RefreshIScsiSendTargetPortal: discovery again; a portal that no longer answers is
    # ISDSC_CONNECTION_FAILED.
    param($Cmdlet, $Set, $P)
    if (-not (Assert-FakeIscsiService -Cmdlet $Cmdlet -ClassName 'MSFT_iSCSITargetPortal')) {
        return
    }
    foreach ($portal in @(Get-FakePortalsFromParameters -Cmdlet $Cmdlet -P $P)) {
        if (-not (Test-FakePortalAnswers -PortalKey $portal.key)) {
            Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakeIscsiRecord -Status 'ConnectionFailed' -ClassName 'MSFT_iSCSITargetPortal')
            continue
        }
        if ($P.ContainsKey('PassThru')) {
            New-FakeIscsiTargetPortalInstance -Portal $portal
        }
    }
}

# --------------------------------------------------------------------------------------------
# Targets and sessions
# --------------------------------------------------------------------------------------------

function Select-FakeQueried {
    # A CDXML query by key property: the items whose key (-KeyOf) equals one of the values the
    # caller gave for -PropertyName, each value matching nothing a non-terminating "No
    # <class> objects found" error; all items when the parameter was not given.
    param($Cmdlet, [System.Collections.IDictionary]$P, [object[]]$Items, [string]$PropertyName, [string]$ClassName, [scriptblock]$KeyOf)
    if (-not $P.ContainsKey($PropertyName)) {
        return $Items
    }
    foreach ($value in @($P[$PropertyName])) {
        $hits = @($Items | Where-Object { [string]::Equals((& $KeyOf $_), [string]$value, [System.StringComparison]::OrdinalIgnoreCase) })
        if ($hits.Count -eq 0) {
            Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakeNotFoundRecord -ClassName $ClassName -PropertyName $PropertyName -Value ([string]$value))
            continue
        }
        $hits
    }
}

Register-FakeCmdlet -Name 'Get-IscsiTarget' -Body {
    param($Cmdlet, $Set, $P)
    if (-not (Assert-FakeIscsiService -Cmdlet $Cmdlet -ClassName 'MSFT_iSCSITarget')) {
        return
    }
    $iqns = @(Get-FakeDiscoveredTargets)
    switch ($Set) {
        'ByiSCSISession' {
            $iqns = @($iqns | Where-Object { [string]::Equals($_, [string]$P['IscsiSession'].TargetNodeAddress, [System.StringComparison]::OrdinalIgnoreCase) })
        }
        'ByiSCSIConnection' {
            $record = New-FakeErrorRecord -Exception 'the fake host does not model Get-IscsiTarget -IscsiConnection yet' -ErrorId 'FakeHostNotModelled,Get-IscsiTarget' -Category 'NotImplemented'
            Stop-FakeCmdlet -Cmdlet $Cmdlet -ErrorRecord $record
        }
        'ByiSCSITargetPortal' {
            $portal = New-FakePortal -Address ([string]$P['IscsiTargetPortal'].TargetPortalAddress) -Port ([int]$P['IscsiTargetPortal'].TargetPortalPortNumber)
            $iqns = @($iqns | Where-Object { Test-FakeTargetOnPortal -Iqn $_ -PortalKey $portal.key })
        }
    }
    $iqns = @(Select-FakeQueried -Cmdlet $Cmdlet -P $P -Items $iqns -PropertyName 'NodeAddress' -ClassName 'MSFT_iSCSITarget' -KeyOf { param($Item) [string]$Item })
    foreach ($iqn in $iqns) {
        New-FakeIscsiTargetInstance -Iqn $iqn
    }
}

Register-FakeCmdlet -Name 'Get-IscsiSession' -Body {
    param($Cmdlet, $Set, $P)
    if (-not (Assert-FakeIscsiService -Cmdlet $Cmdlet -ClassName 'MSFT_iSCSISession')) {
        return
    }
    $sessions = @((Get-FakeIscsi)['sessions'] | Where-Object { $null -ne $_ })
    $association = $null
    switch ($Set) {
        'ByiSCSITarget' {
            $association = $P['IscsiTarget']
            $sessions = @($sessions | Where-Object { [string]::Equals([string]$_['target_iqn'], [string]$P['IscsiTarget'].NodeAddress, [System.StringComparison]::OrdinalIgnoreCase) })
        }
        'ByDisk' {
            $association = $P['Disk']
            $number = [long]$P['Disk'].Number
            $sessions = @($sessions | Where-Object { @(Get-FakeSessionDisks -SessionIdentifier ([string]$_['id']) | Where-Object { $_.number -eq $number }).Count -gt 0 })
        }
        'ByiSCSIConnection' {
            $association = $P['IscsiConnection']
            $id = ([string]$P['IscsiConnection'].ConnectionIdentifier) -replace '-0x1$', ''
            $sessions = @($sessions | Where-Object { [string]$_['id'] -eq $id })
        }
    }
    if ($null -ne $association -and $sessions.Count -eq 0) {
        Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakeNotFoundRecord -ClassName 'MSFT_iSCSISession' -QueryDescription (Get-FakeAssociationDescription -ClassName 'MSFT_iSCSISession' -Instance $association))
        return
    }
    $sessions = @(Select-FakeQueried -Cmdlet $Cmdlet -P $P -Items $sessions -PropertyName 'SessionIdentifier' -ClassName 'MSFT_iSCSISession' -KeyOf { param($Item) [string]$Item['id'] })
    foreach ($session in $sessions) {
        New-FakeIscsiSessionInstance -Session $session
    }
}

Register-FakeCmdlet -Name 'Get-IscsiConnection' -Body {
    param($Cmdlet, $Set, $P)
    if (-not (Assert-FakeIscsiService -Cmdlet $Cmdlet -ClassName 'MSFT_iSCSIConnection')) {
        return
    }
    $sessions = @((Get-FakeIscsi)['sessions'] | Where-Object { $null -ne $_ })
    $association = $null
    switch ($Set) {
        'ByiSCSISession' {
            $association = $P['IscsiSession']
            $sessions = @($sessions | Where-Object { [string]::Equals([string]$_['id'], [string]$P['IscsiSession'].SessionIdentifier, [System.StringComparison]::OrdinalIgnoreCase) })
        }
        'ByiSCSITarget' {
            $association = $P['IscsiTarget']
            $sessions = @($sessions | Where-Object { [string]::Equals([string]$_['target_iqn'], [string]$P['IscsiTarget'].NodeAddress, [System.StringComparison]::OrdinalIgnoreCase) })
        }
    }
    if ($null -ne $association -and $sessions.Count -eq 0) {
        Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakeNotFoundRecord -ClassName 'MSFT_iSCSIConnection' -QueryDescription (Get-FakeAssociationDescription -ClassName 'MSFT_iSCSIConnection' -Instance $association))
        return
    }
    foreach ($session in $sessions) {
        New-FakeIscsiConnectionInstance -Session $session
    }
}

function Remove-FakeIscsiSession {
    # Logs out of a session; the disks of its target go away with the last session (their
    # offline and read-only attributes stay with the disk, as Windows keeps them).
    param([hashtable]$Session)
    $iscsi = Get-FakeIscsi
    $iscsi['sessions'] = @($iscsi['sessions'] | Where-Object { $null -ne $_ -and [string]$_['id'] -ne [string]$Session['id'] })
    Save-FakeState
}

function Test-FakeSessionBusy {
    # A device of the session is in use and no other session of the target reaches it:
    # LogoutIScsiTarget refuses (ISDSC_DEVICE_BUSY_ON_SESSION).
    param([hashtable]$Session)
    if (@(Get-FakeIscsiSessionsOf -Iqn ([string]$Session['target_iqn'])).Count -gt 1) {
        return $false
    }
    $online = Get-FakeIscsiList -Name 'online_disks'
    foreach ($disk in @(Get-FakeSessionDisks -SessionIdentifier ([string]$Session['id']))) {
        # In use: an online disk with mounted volumes (the file system holds them open).
        if ($online -contains $disk.number -and @(Get-FakeDiskAccessPaths -Number $disk.number).Count -gt 0) {
            return $true
        }
    }
    return $false
}

Register-FakeCmdlet -Name 'Disconnect-IscsiTarget' -Body {
    param($Cmdlet, $Set, $P)
    if (-not (Assert-FakeIscsiService -Cmdlet $Cmdlet -ClassName 'MSFT_iSCSITarget')) {
        return
    }
    $wanted = Microsoft.PowerShell.Utility\New-Object -TypeName System.Collections.Generic.List[object]
    if ($P.ContainsKey('InputObject')) {
        foreach ($item in @($P['InputObject'])) {
            if ($null -ne $item.PSObject.Properties['SessionIdentifier']) {
                $wanted.Add(@{ iqn = [string]$item.TargetNodeAddress; id = [string]$item.SessionIdentifier })
            } else {
                $wanted.Add(@{ iqn = [string]$item.NodeAddress; id = [string]$P['SessionIdentifier'] })
            }
        }
    } else {
        foreach ($iqn in @($P['NodeAddress'])) {
            $wanted.Add(@{ iqn = [string]$iqn; id = [string]$P['SessionIdentifier'] })
        }
    }
    foreach ($one in $wanted) {
        $sessions = @(Get-FakeIscsiSessionsOf -Iqn $one.iqn | Where-Object { $one.id -eq '' -or [string]::Equals([string]$_['id'], $one.id, [System.StringComparison]::OrdinalIgnoreCase) })
        if ($sessions.Count -eq 0) {
            Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakeIscsiRecord -Status 'InvalidSessionId' -ClassName 'MSFT_iSCSITarget')
            continue
        }
        foreach ($session in $sessions) {
            if (-not $Cmdlet.ShouldProcess([string]$session['target_iqn'], 'Disconnect')) {
                continue
            }
            if (Test-FakeSessionBusy -Session $session) {
                Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakeIscsiRecord -Status 'DeviceBusy' -ClassName 'MSFT_iSCSITarget')
                continue
            }
            Remove-FakeIscsiSession -Session $session
            if ($P.ContainsKey('PassThru')) {
                New-FakeIscsiTargetInstance -Iqn ([string]$session['target_iqn'])
            }
        }
    }
}

function Set-FakeIscsiPersistence {
    # Register-IscsiSession / Unregister-IscsiSession: the persistent login of the sessions named
    # by -SessionIdentifier or -InputObject is made ($true, restored at boot) or dropped.
    param($Cmdlet, [System.Collections.IDictionary]$P, [bool]$Persistent)
    if (-not (Assert-FakeIscsiService -Cmdlet $Cmdlet -ClassName 'MSFT_iSCSISession')) {
        return
    }
    $ids = @()
    if ($P.ContainsKey('InputObject')) {
        $ids = @($P['InputObject'] | ForEach-Object { [string]$_.SessionIdentifier })
    } else {
        $ids = @($P['SessionIdentifier'])
    }
    foreach ($id in $ids) {
        $session = Find-FakeIscsiSession -SessionIdentifier ([string]$id)
        if ($null -eq $session) {
            Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakeNotFoundRecord -ClassName 'MSFT_iSCSISession' -PropertyName 'SessionIdentifier' -Value ([string]$id))
            continue
        }
        $session['persistent'] = $Persistent
        Save-FakeState
        if ($P.ContainsKey('PassThru')) {
            New-FakeIscsiSessionInstance -Session $session
        }
    }
}

Register-FakeCmdlet -Name 'Register-IscsiSession' -Body {
    param($Cmdlet, $Set, $P)
    Set-FakeIscsiPersistence -Cmdlet $Cmdlet -P $P -Persistent $true
}

Register-FakeCmdlet -Name 'Unregister-IscsiSession' -Body {
    param($Cmdlet, $Set, $P)
    Set-FakeIscsiPersistence -Cmdlet $Cmdlet -P $P -Persistent $false
}

# --------------------------------------------------------------------------------------------
# Login (MSFT_iSCSITarget.Connect, Connect-IscsiTarget)
# --------------------------------------------------------------------------------------------

function Get-FakeSha256Hex {
    param([string]$Text)
    $bytes = [System.Security.Cryptography.SHA256]::HashData([System.Text.Encoding]::UTF8.GetBytes($Text))
    return ([System.Convert]::ToHexString($bytes)).ToLowerInvariant()
}

function Test-FakeChapAccepted {
    # The target's CHAP check: a target with a credential wants one-way CHAP with its user name
    # and secret; a target without one accepts any login.
    param([string]$Iqn, [hashtable]$Arguments)
    $credential = (Get-FakeIscsi)['targets'][$Iqn]['credential']
    if ($null -eq $credential) {
        return $true
    }
    if ([string]$Arguments['AuthenticationType'] -notin @('ONEWAYCHAP', 'MUTUALCHAP')) {
        return $false
    }
    if (-not [string]::Equals([string]$Arguments['ChapUsername'], [string]$credential['username'], [System.StringComparison]::Ordinal)) {
        return $false
    }
    $secret = [string]$Arguments['ChapSecret']
    $hash = Get-FakeSha256Hex -Text $secret
    $secret = $null
    return ($hash -eq ([string]$credential['password_sha256']).ToLowerInvariant())
}

function Get-FakeLoginPortal {
    # The portal a login goes through: TargetPortalAddress/PortNumber, else the first known
    # portal offering the target.
    param([string]$Iqn, [hashtable]$Arguments)
    $port = 3260
    if ($null -ne $Arguments['TargetPortalPortNumber'] -and [int]$Arguments['TargetPortalPortNumber'] -ne 0) {
        $port = [int]$Arguments['TargetPortalPortNumber']
    }
    if (-not [string]::IsNullOrEmpty([string]$Arguments['TargetPortalAddress'])) {
        return New-FakePortal -Address ([string]$Arguments['TargetPortalAddress']) -Port $port
    }
    foreach ($portal in @(Get-FakeKnownPortals)) {
        if (Test-FakeTargetOnPortal -Iqn $Iqn -PortalKey $portal.key) {
            return $portal
        }
    }
    return $null
}

function Invoke-FakeIscsiLogin {
    # LoginIScsiTarget: the new session (hashtable of state.iscsi.sessions), or the name of the
    # initiator status it fails with.
    param([hashtable]$Arguments)
    if (-not (Test-FakeIscsiServiceRunning)) {
        return 'ServiceNotRunning'
    }
    $iqn = Find-FakeIscsiTarget -Iqn ([string]$Arguments['NodeAddress'])
    if ($null -eq $iqn -or (@(Get-FakeDiscoveredTargets) -notcontains $iqn)) {
        return 'TargetNotFound'
    }
    $portal = Get-FakeLoginPortal -Iqn $iqn -Arguments $Arguments
    if ($null -eq $portal -or -not (Test-FakeTargetOnPortal -Iqn $iqn -PortalKey $portal.key)) {
        return 'TargetNotFound'
    }
    if (-not (Test-FakeTargetReachable -Iqn $iqn)) {
        return 'ConnectionFailed'
    }
    if (@(Get-FakeIscsiSessionsOf -Iqn $iqn).Count -gt 0 -and -not [bool]$Arguments['IsMultipathEnabled']) {
        return 'AlreadyLoggedIn'
    }
    if (-not (Test-FakeChapAccepted -Iqn $iqn -Arguments $Arguments)) {
        return 'AuthenticationFailure'
    }
    $target = (Get-FakeIscsi)['targets'][$iqn]
    if ($target.ContainsKey('allowed') -and $null -ne $target['allowed'] -and -not [bool]$target['allowed']) {
        return 'AuthorizationFailure'
    }
    return (Add-FakeIscsiSession -Iqn $iqn -Portal $portal -Persistent ([bool]$Arguments['IsPersistent']))
}

function Add-FakeIscsiSession {
    # A new session; the target's LUNs appear as disks, offline by the SAN policy (OfflineShared)
    # unless online before (state.iscsi.online_disks). offline_disks lists only the disks taken
    # offline with Set-Disk, as the state schema has it.
    param([string]$Iqn, [hashtable]$Portal, [bool]$Persistent)
    $iscsi = Get-FakeIscsi
    $session = @{ id = New-FakeSessionId; target_iqn = $Iqn; portal = $Portal.text; persistent = $Persistent }
    $iscsi['sessions'] = @(@($iscsi['sessions']) + $session)
    Save-FakeState
    return $session
}

function Stop-FakeIscsiMethod {
    # How CimSession.InvokeMethod fails, seen from PowerShell: a MethodInvocationException around
    # the CimException (error record id CimException, category NotSpecified).
    param([string]$Status)
    $cim = New-FakeIscsiCimException -Status $Status
    $message = 'Exception calling "InvokeMethod" with "4" argument(s): "' + $cim.Message + '"'
    $exception = Microsoft.PowerShell.Utility\New-Object -TypeName System.Management.Automation.MethodInvocationException -ArgumentList $message, $cim
    throw (New-FakeErrorRecord -Exception $exception -ErrorId 'CimException' -Category 'NotSpecified')
}

Register-FakeCimMethod -ClassName 'MSFT_iSCSITarget' -MethodName 'Connect' -Body {
    param($Arguments)
    $answer = Invoke-FakeIscsiLogin -Arguments $Arguments
    if ($answer -is [string]) {
        Stop-FakeIscsiMethod -Status $answer
    }
    return (New-FakeCimMethodResult -ReturnValue 0)
}

Register-FakeCmdlet -Name 'Connect-IscsiTarget' -Body {
    param($Cmdlet, $Set, $P)
    $arguments = @{}
    foreach ($key in @($P.Keys)) {
        $arguments[$key] = $P[$key]
    }
    if ($P.ContainsKey('InputObject')) {
        $arguments['NodeAddress'] = [string]@($P['InputObject'])[0].NodeAddress
    }
    if (-not $arguments.ContainsKey('IsPersistent')) {
        $arguments['IsPersistent'] = $false
    }
    $answer = Invoke-FakeIscsiLogin -Arguments $arguments
    if ($answer -is [string]) {
        Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakeIscsiRecord -Status $answer -ClassName 'MSFT_iSCSITarget')
        return
    }
    return (New-FakeIscsiSessionInstance -Session $answer)
}

# --------------------------------------------------------------------------------------------
# The CIM client's parameter collection
# --------------------------------------------------------------------------------------------

function New-FakeCimArguments {
    # Stands in for New-SmbvolCimArguments: Microsoft.Management.Infrastructure's
    # CimMethodParametersCollection cannot be constructed on Linux (its constructor needs the
    # native MI library, libmi). The stand-in keeps what the real one offers the templates:
    # Add(CimMethodParameter), enumeration, Dispose().
    return ,(Microsoft.PowerShell.Utility\New-Object -TypeName 'System.Collections.Concurrent.BlockingCollection[Microsoft.Management.Infrastructure.CimMethodParameter]')
}

Set-Alias -Name 'New-SmbvolCimArguments' -Value 'New-FakeCimArguments'
Export-ModuleMember -Function 'New-FakeCimArguments' -Alias 'New-SmbvolCimArguments'

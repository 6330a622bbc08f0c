# SMB: the shares this host can reach and the files on them, this host's own shares, SMB
# global and user mappings (SmbShare module, CDXML over ROOT/Microsoft/Windows/SMB), what the
# host may open on a UNC path (Test-Path, Get-ChildItem, Hyper-V's attachments), and Windows
# Server 2016, which has no SmbGlobalMapping cmdlets. Dot-sourced by FakeHost.psm1; every shape
# is listed in SHAPES.md (section SMB).
#
# state.shares = {'\\server\share': {files: [relative paths], credential: null |
#   {username, password_sha256}, local_path: null | 'C:\folder' (a share of this host),
#   reachable}}
# state.mappings = [{remote_path, kind: global | user, status: OK | Disconnected | Unavailable,
#   credential, owned}]   (owned is the runner's business: it reads smbvol's registry record)
# state.host.global_mapping_supported (false: Windows Server 2016), state.host.remote_session
# (true: a remoting session without credential delegation).

$script:SmbNamespace = 'ROOT/Microsoft/Windows/SMB'
$script:SmbStatusCodes = @{ OK = 0; Paused = 1; Disconnected = 2; NetworkError = 3; Connecting = 4; Reconnecting = 5; Unavailable = 6 }
$script:Win32Messages = @{
    2 = 'The system cannot find the file specified.'
    5 = 'Access is denied.'
    53 = 'The network path was not found.'
    67 = 'The network name cannot be found.'
    85 = 'The local device name is already in use.'
    1219 = 'Multiple connections to a server or shared resource by the same user, using more than one user name, are not allowed. Disconnect all previous connections to the server or shared resource and try again.'
    1312 = 'A specified logon session does not exist. It may already have been terminated.'
    1326 = 'The user name or password is incorrect.'
    2250 = 'This network connection does not exist.'
}

# --------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------

function Get-FakeShares {
    return Get-FakeStateTable -Name 'shares'
}

function Get-FakeMappings {
    $state = Get-FakeState
    if (-not $state.ContainsKey('mappings') -or $null -eq $state['mappings']) {
        return @()
    }
    return @($state['mappings'])
}

function Set-FakeMappings {
    param([object[]]$Mappings)
    (Get-FakeState)['mappings'] = @($Mappings)
    Save-FakeState
}

function Test-FakeGlobalMappingSupported {
    $hostInfo = Get-FakeHost
    return -not ($hostInfo.ContainsKey('global_mapping_supported') -and $false -eq $hostInfo['global_mapping_supported'])
}

function Test-FakeRemoteSession {
    # A service's logon (the scheduled task's SYSTEM) is never a network logon.
    if ((Get-FakeLogonSession) -eq 'service') {
        return $false
    }
    $hostInfo = Get-FakeHost
    return ($hostInfo.ContainsKey('remote_session') -and $true -eq $hostInfo['remote_session'])
}

function Get-FakeSha256 {
    param([string]$Text)
    $sha = [System.Security.Cryptography.SHA256]::Create()
    try {
        $bytes = $sha.ComputeHash([System.Text.Encoding]::UTF8.GetBytes($Text))
        return ([System.BitConverter]::ToString($bytes).Replace('-', '')).ToLowerInvariant()
    } finally {
        $sha.Dispose()
    }
}

function ConvertTo-FakeCredentialSpec {
    # {username, password_sha256} of a PSCredential (the fake keeps no password).
    param([pscredential]$Credential)
    return @{ username = [string]$Credential.UserName; password_sha256 = Get-FakeSha256 -Text $Credential.GetNetworkCredential().Password }
}

function Test-FakeSameCredential {
    # Same user (case-insensitive) and password; null only equals null.
    param($Left, $Right)
    if ($null -eq $Left -or $null -eq $Right) {
        return ($null -eq $Left -and $null -eq $Right)
    }
    return [string]::Equals([string]$Left['username'], [string]$Right['username'], [System.StringComparison]::OrdinalIgnoreCase) -and [string]$Left['password_sha256'] -eq [string]$Right['password_sha256']
}

# --------------------------------------------------------------------------------------------
# Paths: which share a path lies on, and what this host may open there
# --------------------------------------------------------------------------------------------

$script:ThisHostNames = @{}

function Test-FakeThisHostName {
    # Whether a UNC host part is this host (Test-FakeThisHostNameUncached), remembered per
    # state file and name.
    param([string]$Server)
    $key = [string]$env:SMBVOL_FAKEHOST_STATE + '|' + $Server.ToLowerInvariant()
    $known = $script:ThisHostNames[$key]
    if ($null -eq $known) {
        $known = Test-FakeThisHostNameUncached -Server $Server
        $script:ThisHostNames[$key] = $known
    }
    return $known
}

function Test-FakeThisHostNameUncached {
    # Whether a UNC host part is this host: localhost, its name or FQDN, a loopback address or
    # one of its addresses (also as xxxx--yy.ipv6-literal.net), or a name resolving to one.
    param([string]$Server)
    $name = $Server.ToLowerInvariant().TrimEnd('.')
    $hostInfo = Get-FakeHost
    $own = @('localhost', ([string]$hostInfo['name']).ToLowerInvariant())
    if (-not [string]::IsNullOrEmpty([string]$hostInfo['domain'])) {
        $own += (([string]$hostInfo['name']) + '.' + [string]$hostInfo['domain']).ToLowerInvariant()
    }
    if ($own -contains $name) {
        return $true
    }
    if ($name.EndsWith('.ipv6-literal.net')) {
        $name = $name.Substring(0, $name.Length - 17).Replace('-', ':').Replace('s', '%')
    }
    $candidates = @()
    $parsed = $null
    if ([System.Net.IPAddress]::TryParse($name.Split([char]'%')[0], [ref]$parsed)) {
        $candidates = @($parsed)
    } else {
        try {
            $candidates = @(Resolve-FakeHostName -Name $name | ForEach-Object { [System.Net.IPAddress]::Parse([string]$_) })
        } catch {
            return $false
        }
    }
    $addresses = @(@($hostInfo['addresses']) | Where-Object { $null -ne $_ } | ForEach-Object { [System.Net.IPAddress]::Parse(([string]$_).Split([char]'%')[0]) })
    foreach ($candidate in $candidates) {
        if ([System.Net.IPAddress]::IsLoopback($candidate)) {
            return $true
        }
        foreach ($address in $addresses) {
            if ($address.Equals($candidate)) {
                return $true
            }
        }
    }
    return $false
}

function Get-FakeShareName {
    param([string]$Root)
    return $Root.Substring(2).Split([char]'\')[1]
}

function Find-FakeLocalShare {
    # The state key of this host's share named $Name (local_path set), or $null.
    param([string]$Name)
    $shares = Get-FakeShares
    foreach ($key in @($shares.Keys)) {
        $local = [string]$shares[$key]['local_path']
        if ($local -ne '' -and [string]::Equals((Get-FakeShareName -Root ([string]$key)), $Name, [System.StringComparison]::OrdinalIgnoreCase)) {
            return [string]$key
        }
    }
    return $null
}

function Resolve-FakeSharePath {
    # Where $Path lies: @{ where = 'share' (a share this host reaches over SMB) | 'local' (a
    # folder of one of this host's shares, by local path or by a UNC name of this host) |
    # 'unreachable' (code 53 / 67) | 'outside' (nothing the model holds); key = the share's
    # state key; relative = the path below the share root ('' for the root) }.
    param([string]$Path)
    $text = ([string]$Path).Replace('/', '\')
    $shares = Get-FakeShares
    $unc = [regex]::Match($text, '^\\\\([^\\]+)\\([^\\]+)(?:\\(.*))?$')
    if ($unc.Success) {
        $server = $unc.Groups[1].Value
        $shareName = $unc.Groups[2].Value
        $relative = $unc.Groups[3].Value.Trim('\')
        if ($server -eq '?' -or $server -eq '.') {
            return @{ where = 'outside'; relative = $relative }
        }
        $root = '\\' + $server + '\' + $shareName
        $isThisHost = Test-FakeThisHostName -Server $server
        foreach ($key in @($shares.Keys)) {
            if ([string]::Equals([string]$key, $root, [System.StringComparison]::OrdinalIgnoreCase) -and -not ($isThisHost -and [string]$shares[$key]['local_path'] -ne '')) {
                return @{ where = 'share'; key = [string]$key; relative = $relative }
            }
        }
        if ($isThisHost) {
            $key = Find-FakeLocalShare -Name $shareName
            if ($null -eq $key) {
                return @{ where = 'unreachable'; code = 67; relative = $relative }
            }
            return @{ where = 'local'; key = $key; relative = $relative }
        }
        # No such share: the server answers without it (67) or does not answer at all (53).
        foreach ($key in @($shares.Keys)) {
            $other = ([string]$key).Substring(2).Split([char]'\')[0]
            if ([string]::Equals($other, $server, [System.StringComparison]::OrdinalIgnoreCase) -and $false -ne $shares[$key]['reachable']) {
                return @{ where = 'unreachable'; code = 67; relative = $relative }
            }
        }
        return @{ where = 'unreachable'; code = 53; relative = $relative }
    }
    if ([regex]::IsMatch($text, '^[A-Za-z]:\\')) {
        foreach ($key in @($shares.Keys)) {
            $local = ([string]$shares[$key]['local_path']).TrimEnd('\')
            if ($local -eq '') {
                continue
            }
            if ([string]::Equals($text.TrimEnd('\'), $local, [System.StringComparison]::OrdinalIgnoreCase)) {
                return @{ where = 'local'; key = [string]$key; relative = '' }
            }
            if ($text.StartsWith($local + '\', [System.StringComparison]::OrdinalIgnoreCase)) {
                return @{ where = 'local'; key = [string]$key; relative = $text.Substring($local.Length + 1).Trim('\') }
            }
        }
    }
    return @{ where = 'outside'; relative = $text }
}

function Get-FakeFileIdentity {
    # One text per file, whichever path names it (UNC or local folder of a share of this host).
    param([string]$Path)
    $place = Resolve-FakeSharePath -Path $Path
    if ($null -ne $place['key']) {
        return ([string]$place.key + '|' + [string]$place.relative).ToLowerInvariant()
    }
    return ([string]$Path).Replace('/', '\').ToLowerInvariant()
}

function Test-FakeShareAccess {
    # Whether the share $Key may be opened: a mapping of its root (any status: Windows
    # reconnects it on use) whose credentials the share accepts, or, for a share open to the
    # host's identity (credential null), the computer account (-AsHost: VMMS, the image
    # service) or a script with credentials of its own (not a remoting session without
    # delegation, which reaches other servers anonymously).
    param([string]$Key, [switch]$AsHost)
    $share = (Get-FakeShares)[$Key]
    if ($null -eq $share['credential'] -and ($AsHost -or -not (Test-FakeRemoteSession))) {
        return $true
    }
    foreach ($mapping in Get-FakeMappings) {
        if ([string]::Equals(([string]$mapping['remote_path']).TrimEnd('\'), $Key, [System.StringComparison]::OrdinalIgnoreCase) -and (Test-FakeSameCredential -Left $mapping['credential'] -Right $share['credential'])) {
            return $true
        }
    }
    return $false
}

function Get-FakeShareItem {
    # What the share holds at $Relative: 'file', 'folder' (the root, or a folder of a file) or $null.
    param([string]$Key, [string]$Relative)
    if ($Relative -eq '') {
        return 'folder'
    }
    foreach ($file in @((Get-FakeShares)[$Key]['files'])) {
        $name = ([string]$file).Replace('/', '\')
        if ([string]::Equals($name, $Relative, [System.StringComparison]::OrdinalIgnoreCase)) {
            return 'file'
        }
        if ($name.StartsWith($Relative + '\', [System.StringComparison]::OrdinalIgnoreCase)) {
            return 'folder'
        }
    }
    return $null
}

function Get-FakeFileAccess {
    # What the script (-AsHost: the host's computer account, as VMMS) sees at $Path: @{ status = 'ok' | 'denied' (code 5) | 'unreachable'
    # (code 53 / 67, message) | 'outside'; exists; item = 'file' | 'folder' | $null; key;
    # relative }.
    param([string]$Path, [switch]$AsHost)
    $place = Resolve-FakeSharePath -Path $Path
    $answer = @{ status = 'outside'; exists = $false; item = $null; key = $place['key']; relative = $place['relative']; code = $null; message = $null }
    switch ([string]$place.where) {
        'unreachable' {
            $answer.status = 'unreachable'
            $answer.code = [int]$place.code
            $answer.message = $script:Win32Messages[[int]$place.code]
            return $answer
        }
        'outside' {
            return $answer
        }
        'share' {
            if ($false -eq (Get-FakeShares)[$place.key]['reachable']) {
                $answer.status = 'unreachable'
                $answer.code = 53
                $answer.message = $script:Win32Messages[53]
                return $answer
            }
            if (-not (Test-FakeShareAccess -Key $place.key -AsHost:$AsHost)) {
                $answer.status = 'denied'
                $answer.code = 5
                $answer.message = $script:Win32Messages[5]
                return $answer
            }
        }
    }
    $answer.status = 'ok'
    $answer.item = Get-FakeShareItem -Key $place.key -Relative ([string]$place.relative)
    $answer.exists = $null -ne $answer.item
    return $answer
}

function Test-FakeUncPath {
    # Test-Path on a UNC path or a folder of this host's shares: what the host can see there
    # (no access, no answer: $false, as Test-Path swallows the error). Paths the model does not
    # hold go to the real Test-Path.
    param([string]$Path, [string]$PathType)
    $access = Get-FakeFileAccess -Path $Path
    if ($access.status -eq 'outside' -and -not ([string]$Path).StartsWith('\\')) {
        return $FakeForward
    }
    if ($access.status -ne 'ok' -or -not $access.exists) {
        return $false
    }
    switch ($PathType) {
        'Leaf' { return $access.item -eq 'file' }
        'Container' { return $access.item -eq 'folder' }
    }
    return $true
}

function Test-FakeNetworkLogon {
    # Stands in for Test-SmbvolNetworkLogon (the NETWORK SID S-1-5-2 in the token): a remoting
    # session without credential delegation (state.host.remote_session).
    return (Test-FakeRemoteSession)
}

function Invoke-FakeFolderProbe {
    # Stands in for Invoke-SmbvolFolderProbe, which reads a folder with
    # [System.IO.Directory]::EnumerateFileSystemEntries: what that call throws for the model's
    # answer, wrapped as PowerShell wraps a .NET method's exception (MethodInvocationException,
    # error id = the exception's type name): DirectoryNotFoundException (0x80070003),
    # UnauthorizedAccessException (0x80070005), IOException 'The network path was not found.'
    # (0x80070035) / 'The network name cannot be found.' (0x80070043).
    param([string]$Folder)
    $access = Get-FakeFileAccess -Path $Folder
    if ($access.status -eq 'ok' -and $access.item -eq 'folder') {
        return
    }
    switch ([string]$access.status) {
        'denied' {
            $inner = Microsoft.PowerShell.Utility\New-Object -TypeName System.UnauthorizedAccessException -ArgumentList ('Access to the path ''' + $Folder + ''' is denied.')
            $inner.HResult = -2147024891
        }
        'unreachable' {
            $inner = Microsoft.PowerShell.Utility\New-Object -TypeName System.IO.IOException -ArgumentList ([string]$access.message + ' : ''' + $Folder + ''''), (-2147024896 + [int]$access.code)
        }
        default {
            $inner = Microsoft.PowerShell.Utility\New-Object -TypeName System.IO.DirectoryNotFoundException -ArgumentList ('Could not find a part of the path ''' + $Folder + '''.')
            $inner.HResult = -2147024893
        }
    }
    $exception = Microsoft.PowerShell.Utility\New-Object -TypeName System.Management.Automation.MethodInvocationException -ArgumentList ('Exception calling "EnumerateFileSystemEntries" with "2" argument(s): "' + $inner.Message + '"'), $inner
    throw (New-FakeErrorRecord -Exception $exception -ErrorId $inner.GetType().Name -Category 'NotSpecified')
}

Set-Alias -Name 'Test-SmbvolNetworkLogon' -Value 'Test-FakeNetworkLogon'
Set-Alias -Name 'Invoke-SmbvolFolderProbe' -Value 'Invoke-FakeFolderProbe'

# --------------------------------------------------------------------------------------------
# Get-ChildItem on UNC folders
# --------------------------------------------------------------------------------------------

function New-FakeFileSystemItem {
    param([string]$FullName, [bool]$Container)
    $name = $FullName.Substring($FullName.LastIndexOf('\') + 1)
    $extension = ''
    if (-not $Container -and $name.Contains('.')) {
        $extension = $name.Substring($name.LastIndexOf('.'))
    }
    $item = [pscustomobject]@{
        Name = $name
        FullName = $FullName
        Extension = $extension
        Exists = $true
        PSIsContainer = $Container
        Length = [long]4194304
        PSPath = 'Microsoft.PowerShell.Core\FileSystem::' + $FullName
        PSChildName = $name
    }
    if ($Container) {
        $item.PSObject.Properties.Remove('Length')
    }
    $typeName = 'System.IO.FileInfo'
    if ($Container) {
        $typeName = 'System.IO.DirectoryInfo'
    }
    $item.PSObject.TypeNames.Insert(0, $typeName)
    return $item
}

function Get-FakeFolderEntries {
    # The files and folders directly in (or, with $Recurse, under) $Relative of share $Key.
    param([string]$Key, [string]$Relative, [bool]$Recurse)
    $prefix = ''
    if ($Relative -ne '') {
        $prefix = $Relative + '\'
    }
    $seen = @{}
    foreach ($file in @((Get-FakeShares)[$Key]['files'])) {
        $name = ([string]$file).Replace('/', '\')
        if (-not $name.StartsWith($prefix, [System.StringComparison]::OrdinalIgnoreCase)) {
            continue
        }
        $rest = $name.Substring($prefix.Length)
        $parts = $rest.Split([char]'\')
        $depth = $parts.Length
        if (-not $Recurse) {
            $depth = 1
        }
        for ($i = 0; $i -lt $depth; $i++) {
            $entry = ($parts[0..$i] -join '\')
            $container = $i -lt $parts.Length - 1
            if (-not $seen.ContainsKey($entry.ToLowerInvariant())) {
                $seen[$entry.ToLowerInvariant()] = $true
                @{ relative = $entry; container = $container }
            }
        }
    }
}

function New-FakeChildItemError {
    # Get-ChildItem's errors on a UNC path: an unreachable server or share is a path that does
    # not exist (PathNotFound), a folder the identity may not open is DirUnauthorizedAccessError.
    param([string]$Path, [hashtable]$Access)
    if ($Access.status -eq 'denied') {
        $exception = Microsoft.PowerShell.Utility\New-Object -TypeName System.UnauthorizedAccessException -ArgumentList ('Access to the path ''' + $Path + ''' is denied.')
        $exception.HResult = -2147024891
        return New-FakeErrorRecord -Exception $exception -ErrorId 'DirUnauthorizedAccessError,Microsoft.PowerShell.Commands.GetChildItemCommand' -Category 'PermissionDenied' -Target $Path
    }
    return New-FakePathNotFound -Path $Path -Command 'GetChildItemCommand'
}

Register-FakeCmdlet -Core -Name 'Get-ChildItem' -Body {
    param($Cmdlet, $Set, $P)
    $path = [string](Get-FakePathArgument -P $P)
    $access = Get-FakeFileAccess -Path $path
    if ($access.status -eq 'outside' -and -not $path.StartsWith('\\')) {
        return $FakeForward
    }
    if ($access.status -ne 'ok' -or -not $access.exists) {
        Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakeChildItemError -Path $path -Access $access)
        return
    }
    $base = $path.Replace('/', '\').TrimEnd('\')
    if ($access.item -eq 'file') {
        return (New-FakeFileSystemItem -FullName $base -Container $false)
    }
    $filter = $null
    if ($P.ContainsKey('Filter') -and -not [string]::IsNullOrEmpty([string]$P['Filter'])) {
        $filter = [System.Management.Automation.WildcardPattern]::new([string]$P['Filter'], [System.Management.Automation.WildcardOptions]::IgnoreCase)
    }
    $recurse = $P.ContainsKey('Recurse') -and [bool]$P['Recurse']
    foreach ($entry in @(Get-FakeFolderEntries -Key $access.key -Relative ([string]$access.relative) -Recurse $recurse)) {
        $name = ([string]$entry.relative).Split([char]'\')[-1]
        if ($null -ne $filter -and -not $filter.IsMatch($name)) {
            continue
        }
        if ($P.ContainsKey('Name') -and [bool]$P['Name']) {
            [string]$entry.relative
            continue
        }
        New-FakeFileSystemItem -FullName ($base + '\' + [string]$entry.relative) -Container ([bool]$entry.container)
    }
}

# --------------------------------------------------------------------------------------------
# CIM instances and errors of the SmbShare module
# --------------------------------------------------------------------------------------------

function ConvertTo-FakeSmbEnum {
    # A CIM enum value as the SmbShare module's type data shows it: the CDXML-generated enum
    # (Microsoft.PowerShell.Cmdletization.GeneratedTypes.<TypeName>), else the uint32 itself.
    param([string]$TypeName, [long]$Value)
    $type = ('Microsoft.PowerShell.Cmdletization.GeneratedTypes.' + $TypeName) -as [type]
    if ($null -eq $type) {
        return [uint32]$Value
    }
    return [System.Enum]::ToObject($type, [uint32]$Value)
}

function New-FakeMappingInstance {
    # MSFT_SmbGlobalMapping / MSFT_SmbMapping: LocalPath, RemotePath, Status (uint32 on the CIM
    # class, 0 OK, 2 Disconnected, 6 Unavailable ..., shown as the module's enum).
    param([System.Collections.IDictionary]$Mapping)
    $className = 'MSFT_SmbMapping'
    if ([string]$Mapping['kind'] -eq 'global') {
        $className = 'MSFT_SmbGlobalMapping'
    }
    $status = $script:SmbStatusCodes[[string]$Mapping['status']]
    if ($null -eq $status) {
        $status = 0
    }
    $properties = [ordered]@{
        Status = ConvertTo-FakeSmbEnum -TypeName ($className.Substring(5) + '.Status') -Value $status
        LocalPath = ''
        RemotePath = [string]$Mapping['remote_path']
        PSComputerName = $null
    }
    if ($className -eq 'MSFT_SmbGlobalMapping') {
        $properties['RequireIntegrity'] = $false
        $properties['RequirePrivacy'] = $false
        $properties['UseWriteThrough'] = $false
    }
    return New-FakeCimInstance -ClassName $className -Namespace $script:SmbNamespace -Property $properties
}

function New-FakeSmbError {
    # A failed SMB CDXML call: a CimException (MSFT_WmiError error_Code = the Windows error)
    # with FullyQualifiedErrorId 'Windows System Error <code>,<cmdlet>', category NotSpecified,
    # the target the CIM instance of the class.
    param([int]$Code, [string]$Cmdlet, [string]$ClassName)
    $message = $script:Win32Messages[$Code]
    if ($null -eq $message) {
        $message = (Microsoft.PowerShell.Utility\New-Object -TypeName System.ComponentModel.Win32Exception -ArgumentList $Code).Message
    }
    $exception = New-FakeCimException -Message $message -Status 'Failed' -ErrorCode $Code -MessageId ('Windows System Error ' + [string]$Code)
    $target = New-FakeCimInstance -ClassName $ClassName -Namespace $script:SmbNamespace -Property ([ordered]@{})
    # The cmdlet's name is appended by PowerShell (WriteError of a function), as for the real
    # CDXML functions.
    return New-FakeErrorRecord -Exception $exception -ErrorId ('Windows System Error ' + [string]$Code) -Category 'NotSpecified' -Target $target
}

function New-FakeCimNotFoundError {
    # The CDXML query's "no match" (CmdletizationQuery_NotFound_<Property>), category ObjectNotFound.
    param([string]$ClassName, [string]$Property, [string]$Value, [string]$Cmdlet)
    $message = 'No ' + $ClassName + ' objects found with property ''' + $Property + ''' equal to ''' + $Value + '''.  Verify the value of the property and retry.'
    $exception = New-FakeCimException -Message $message -Status 'NotFound'
    return New-FakeErrorRecord -Exception $exception -ErrorId ('CmdletizationQuery_NotFound_' + $Property) -Category 'ObjectNotFound' -Target $Value
}

function Find-FakeMappings {
    # The mappings of $Kind matching -RemotePath / -LocalPath (wildcards, as CDXML queries do).
    param([string]$Kind, [System.Collections.IDictionary]$P)
    $found = @()
    foreach ($mapping in Get-FakeMappings) {
        if ([string]$mapping['kind'] -ne $Kind) {
            continue
        }
        if ($P.ContainsKey('RemotePath')) {
            $hit = $false
            foreach ($pattern in @($P['RemotePath'])) {
                if ([System.Management.Automation.WildcardPattern]::new([string]$pattern, [System.Management.Automation.WildcardOptions]::IgnoreCase).IsMatch([string]$mapping['remote_path'])) {
                    $hit = $true
                }
            }
            if (-not $hit) {
                continue
            }
        }
        if ($P.ContainsKey('LocalPath') -and @($P['LocalPath']) -notcontains '') {
            continue
        }
        $found += , $mapping
    }
    return $found
}

function Get-FakeMappingQuery {
    # Get-SmbGlobalMapping / Get-SmbMapping: the instances, or the query's no-match error.
    param($Cmdlet, [System.Collections.IDictionary]$P, [string]$Kind, [string]$Name)
    $className = 'MSFT_SmbMapping'
    if ($Kind -eq 'global') {
        $className = 'MSFT_SmbGlobalMapping'
    }
    $found = @(Find-FakeMappings -Kind $Kind -P $P)
    foreach ($mapping in $found) {
        New-FakeMappingInstance -Mapping $mapping
    }
    if ($found.Count -eq 0) {
        foreach ($property in @('RemotePath', 'LocalPath')) {
            if ($P.ContainsKey($property)) {
                foreach ($value in @($P[$property])) {
                    if (-not [System.Management.Automation.WildcardPattern]::ContainsWildcardCharacters([string]$value)) {
                        Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakeCimNotFoundError -ClassName $className -Property $property -Value ([string]$value) -Cmdlet $Name)
                    }
                }
            }
        }
    }
}

# --------------------------------------------------------------------------------------------
# Creating and removing mappings
# --------------------------------------------------------------------------------------------

function Get-FakeMappingFailure {
    # The Windows error creating a $Kind mapping of $RemotePath with $Credential would meet, or
    # 0: a remoting session without delegation (1312), a share that does not answer (53 / 67),
    # another mapping of that kind to the same server with other credentials (1219), a
    # credential the share refuses (1326).
    param([string]$RemotePath, $Credential, [string]$Kind, [bool]$Delegated)
    if ($null -ne $Credential -and -not $Delegated -and (Test-FakeRemoteSession)) {
        return 1312
    }
    $place = Resolve-FakeSharePath -Path $RemotePath
    if ($place.where -eq 'unreachable') {
        return [int]$place.code
    }
    if ($place.where -ne 'share') {
        return 67
    }
    $share = (Get-FakeShares)[$place.key]
    if ($false -eq $share['reachable']) {
        return 53
    }
    $server = ([string]$place.key).Substring(2).Split([char]'\')[0]
    foreach ($mapping in Get-FakeMappings) {
        $other = ([string]$mapping['remote_path']).Substring(2).Split([char]'\')[0]
        if ([string]$mapping['kind'] -eq $Kind -and [string]::Equals($other, $server, [System.StringComparison]::OrdinalIgnoreCase)) {
            if ([string]::Equals(([string]$mapping['remote_path']).TrimEnd('\'), [string]$place.key, [System.StringComparison]::OrdinalIgnoreCase)) {
                return 85
            }
            if (-not (Test-FakeSameCredential -Left $mapping['credential'] -Right $Credential)) {
                return 1219
            }
        }
    }
    if ($null -ne $share['credential'] -and -not (Test-FakeSameCredential -Left $share['credential'] -Right $Credential)) {
        return 1326
    }
    return 0
}

function Add-FakeMapping {
    # Creates a $Kind mapping; returns the Windows error code (0: created).
    param([string]$RemotePath, $Credential, [string]$Kind, [bool]$Delegated = $false)
    $root = ([string]$RemotePath).TrimEnd('\')
    $code = Get-FakeMappingFailure -RemotePath $root -Credential $Credential -Kind $Kind -Delegated $Delegated
    if ($code -ne 0) {
        return $code
    }
    $place = Resolve-FakeSharePath -Path $root
    $mapping = @{ remote_path = [string]$place.key; kind = $Kind; status = 'OK'; credential = $Credential; owned = $false }
    Set-FakeMappings -Mappings (@(Get-FakeMappings) + @($mapping))
    return 0
}

function Remove-FakeMapping {
    param([System.Collections.IDictionary]$Mapping)
    Set-FakeMappings -Mappings @(Get-FakeMappings | Where-Object { -not [object]::ReferenceEquals($_, $Mapping) })
}

function Get-FakeNewMappingCredential {
    # New-SmbMapping takes -Credential or -UserName/-Password.
    param([System.Collections.IDictionary]$P)
    if ($P.ContainsKey('Credential') -and $null -ne $P['Credential']) {
        return ConvertTo-FakeCredentialSpec -Credential $P['Credential']
    }
    if ($P.ContainsKey('UserName')) {
        return @{ username = [string]$P['UserName']; password_sha256 = Get-FakeSha256 -Text ([string]$P['Password']) }
    }
    return $null
}

Register-FakeCmdlet -Name 'Get-SmbGlobalMapping' -Body {
    param($Cmdlet, $Set, $P)
    Get-FakeMappingQuery -Cmdlet $Cmdlet -P $P -Kind 'global' -Name 'Get-SmbGlobalMapping'
}

Register-FakeCmdlet -Name 'Get-SmbMapping' -Body {
    param($Cmdlet, $Set, $P)
    Get-FakeMappingQuery -Cmdlet $Cmdlet -P $P -Kind 'user' -Name 'Get-SmbMapping'
}

Register-FakeCmdlet -Name 'New-SmbGlobalMapping' -Body {
    param($Cmdlet, $Set, $P)
    $credential = ConvertTo-FakeCredentialSpec -Credential $P['Credential']
    $code = Add-FakeMapping -RemotePath ([string]$P['RemotePath']) -Credential $credential -Kind 'global'
    if ($code -ne 0) {
        Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakeSmbError -Code $code -Cmdlet 'New-SmbGlobalMapping' -ClassName 'MSFT_SmbGlobalMapping')
        return
    }
    return (New-FakeMappingInstance -Mapping @(Get-FakeMappings)[-1])
}

Register-FakeCmdlet -Name 'New-SmbMapping' -Body {
    param($Cmdlet, $Set, $P)
    $kind = 'user'
    $className = 'MSFT_SmbMapping'
    if ($P.ContainsKey('GlobalMapping') -and [bool]$P['GlobalMapping']) {
        $kind = 'global'
        $className = 'MSFT_SmbGlobalMapping'
    }
    $code = Add-FakeMapping -RemotePath ([string]$P['RemotePath']) -Credential (Get-FakeNewMappingCredential -P $P) -Kind $kind
    if ($code -ne 0) {
        Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakeSmbError -Code $code -Cmdlet 'New-SmbMapping' -ClassName $className)
        return
    }
    return (New-FakeMappingInstance -Mapping @(Get-FakeMappings)[-1])
}

function Remove-FakeMappingCall {
    # Remove-SmbGlobalMapping / Remove-SmbMapping by -InputObject (its RemotePath) or by query.
    param($Cmdlet, [System.Collections.IDictionary]$P, [string]$Kind, [string]$Name)
    $className = 'MSFT_SmbMapping'
    if ($Kind -eq 'global') {
        $className = 'MSFT_SmbGlobalMapping'
    }
    $queries = @()
    if ($P.ContainsKey('InputObject')) {
        foreach ($object in @($P['InputObject'])) {
            $queries += , @{ RemotePath = @([string]$object.RemotePath) }
        }
    } else {
        $query = @{}
        foreach ($property in @('RemotePath', 'LocalPath')) {
            if ($P.ContainsKey($property)) {
                $query[$property] = $P[$property]
            }
        }
        $queries += , $query
    }
    foreach ($query in $queries) {
        $found = @(Find-FakeMappings -Kind $Kind -P $query)
        if ($found.Count -eq 0) {
            if ($P.ContainsKey('InputObject')) {
                # The instance is gone: the provider's Remove fails with "connection does not exist".
                Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakeSmbError -Code 2250 -Cmdlet $Name -ClassName $className)
            } elseif ($query.ContainsKey('RemotePath')) {
                Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakeCimNotFoundError -ClassName $className -Property 'RemotePath' -Value ([string]@($query['RemotePath'])[0]) -Cmdlet $Name)
            }
            continue
        }
        foreach ($mapping in $found) {
            $instance = New-FakeMappingInstance -Mapping $mapping
            Remove-FakeMapping -Mapping $mapping
            if ($P.ContainsKey('PassThru') -and [bool]$P['PassThru']) {
                $instance
            }
        }
    }
}

Register-FakeCmdlet -Name 'Remove-SmbGlobalMapping' -Body {
    param($Cmdlet, $Set, $P)
    Remove-FakeMappingCall -Cmdlet $Cmdlet -P $P -Kind 'global' -Name 'Remove-SmbGlobalMapping'
}

Register-FakeCmdlet -Name 'Remove-SmbMapping' -Body {
    param($Cmdlet, $Set, $P)
    $kind = 'user'
    if ($P.ContainsKey('GlobalMapping') -and [bool]$P['GlobalMapping']) {
        $kind = 'global'
    }
    Remove-FakeMappingCall -Cmdlet $Cmdlet -P $P -Kind $kind -Name 'Remove-SmbMapping'
}

# --------------------------------------------------------------------------------------------
# Get-SmbShare: this host's shares
# --------------------------------------------------------------------------------------------

function New-FakeShareInstance {
    # MSFT_SmbShare (ScopeName '*': the default scope; ShareState 1 = Online; ShareType 0 =
    # FileSystemDirectory, 3 = IPC).
    param([string]$Name, [string]$Path, [string]$Description, [bool]$Special, [uint32]$ShareType = 0)
    return New-FakeCimInstance -ClassName 'MSFT_SmbShare' -Namespace $script:SmbNamespace -Property ([ordered]@{
        Name = $Name
        ScopeName = '*'
        Path = $Path
        Description = $Description
        Scoped = $false
        Special = $Special
        Temporary = $false
        ShadowCopy = $false
        ShareType = ConvertTo-FakeSmbEnum -TypeName 'SmbShare.ShareType' -Value $ShareType
        ShareState = ConvertTo-FakeSmbEnum -TypeName 'SmbShare.ShareState' -Value 1
        ConcurrentUserLimit = [uint32]0
        CurrentUsers = [uint32]0
        EncryptData = $false
        FolderEnumerationMode = ConvertTo-FakeSmbEnum -TypeName 'SmbShare.FolderEnumerationMode' -Value 1
        CachingMode = ConvertTo-FakeSmbEnum -TypeName 'SmbShare.CachingMode' -Value 1
        ContinuouslyAvailable = $false
        CATimeout = [uint32]0
        AvailabilityType = ConvertTo-FakeSmbEnum -TypeName 'SmbShare.AvailabilityType' -Value 0
        SmbInstance = ConvertTo-FakeSmbEnum -TypeName 'SmbShare.SmbInstance' -Value 0
        Volume = $null
        PSComputerName = $null
    })
}

function Get-FakeHostShareInstances {
    # The administrative shares every Windows host has, then the shares of the state.
    New-FakeShareInstance -Name 'ADMIN$' -Path 'C:\Windows' -Description 'Remote Admin' -Special $true
    New-FakeShareInstance -Name 'C$' -Path 'C:\' -Description 'Default share' -Special $true
    New-FakeShareInstance -Name 'IPC$' -Path '' -Description 'Remote IPC' -Special $true -ShareType 3
    $shares = Get-FakeShares
    foreach ($key in @($shares.Keys | Sort-Object)) {
        $local = [string]$shares[$key]['local_path']
        if ($local -ne '') {
            New-FakeShareInstance -Name (Get-FakeShareName -Root ([string]$key)) -Path $local -Description '' -Special $false
        }
    }
}

Register-FakeCmdlet -Name 'Get-SmbShare' -Body {
    param($Cmdlet, $Set, $P)
    $all = @(Get-FakeHostShareInstances)
    $found = @()
    foreach ($share in $all) {
        if ($P.ContainsKey('Name')) {
            $hit = $false
            foreach ($pattern in @($P['Name'])) {
                if ([System.Management.Automation.WildcardPattern]::new([string]$pattern, [System.Management.Automation.WildcardOptions]::IgnoreCase).IsMatch([string]$share.Name)) {
                    $hit = $true
                }
            }
            if (-not $hit) {
                continue
            }
        }
        if ($P.ContainsKey('ScopeName') -and @($P['ScopeName'] | Where-Object { [string]$_ -eq '*' }).Count -eq 0) {
            continue
        }
        $found += $share
    }
    $found
    if ($found.Count -eq 0 -and $P.ContainsKey('Name')) {
        foreach ($value in @($P['Name'])) {
            if (-not [System.Management.Automation.WildcardPattern]::ContainsWildcardCharacters([string]$value)) {
                Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakeCimNotFoundError -ClassName 'MSFT_SmbShare' -Property 'Name' -Value ([string]$value) -Cmdlet 'Get-SmbShare')
            }
        }
    }
}

# --------------------------------------------------------------------------------------------
# Windows Server 2016: no SmbGlobalMapping cmdlets, user mappings by WNetAddConnection2
# --------------------------------------------------------------------------------------------

$script:GlobalMappingCmdlets = @('Get-SmbGlobalMapping', 'New-SmbGlobalMapping', 'Remove-SmbGlobalMapping')

function Get-FakeSmbVariantRoot {
    # A modules folder holding only the SmbShare module of a host without the SmbGlobalMapping
    # cmdlets (Windows Server 2016): a copy of the generated one that does not export them.
    $modules = Split-Path -Parent $PSScriptRoot
    $variant = Join-Path (Split-Path -Parent $modules) 'Modules-NoGlobalMapping'
    $marker = Join-Path $variant 'SmbShare/SmbShare.psm1'
    if ([System.IO.File]::Exists($marker)) {
        return $variant
    }
    $staging = $variant + '.' + [System.Guid]::NewGuid().ToString('N')
    $source = [System.IO.File]::ReadAllText((Join-Path $modules 'SmbShare/SmbShare.psm1'))
    foreach ($name in $script:GlobalMappingCmdlets) {
        $source = $source.Replace('''' + $name + ''', ', '').Replace(', ''' + $name + '''', '')
    }
    $null = [System.IO.Directory]::CreateDirectory((Join-Path $staging 'SmbShare'))
    [System.IO.File]::WriteAllText((Join-Path $staging 'SmbShare/SmbShare.psm1'), $source)
    try {
        [System.IO.Directory]::Move($staging, $variant)
    } catch {
        # Another engine process made it first.
        [System.IO.Directory]::Delete($staging, $true)
    }
    return $variant
}

function Set-FakeSmbModuleVariant {
    # The SmbShare module this host has: global_mapping_supported false puts the variant without
    # the SmbGlobalMapping cmdlets first on PSModulePath (the first module of a name wins, in
    # module discovery too), so that Get-Command -Name New-SmbGlobalMapping finds nothing, as on
    # Windows Server 2016; otherwise the variant is taken off the path. FakeHost itself keeps
    # its one path (importing it from another would load a second copy).
    $modules = Split-Path -Parent $PSScriptRoot
    $variant = Join-Path (Split-Path -Parent $modules) 'Modules-NoGlobalMapping'
    $separator = [System.IO.Path]::PathSeparator
    $entries = @(([string]$env:PSModulePath).Split($separator) | Where-Object { $_ -ne '' -and $_.TrimEnd('/') -ne $variant })
    if (-not (Test-FakeGlobalMappingSupported)) {
        $entries = @(Get-FakeSmbVariantRoot) + $entries
    }
    [System.Environment]::SetEnvironmentVariable('PSModulePath', ($entries -join $separator))
}

function Add-FakeUserConnection {
    # WNetAddConnection2 (no local name): a user mapping of this logon session; returns the
    # Windows error code (0: connected). A remoting session without delegation has no
    # credentials to hand on, but WNet takes the given ones: no 1312 here.
    param([string]$RemoteName, [string]$UserName, [securestring]$Password)
    $credential = Microsoft.PowerShell.Utility\New-Object -TypeName System.Management.Automation.PSCredential -ArgumentList $UserName, $Password
    return [int](Add-FakeMapping -RemotePath $RemoteName -Credential (ConvertTo-FakeCredentialSpec -Credential $credential) -Kind 'user' -Delegated $true)
}

function Initialize-FakeNetApi {
    # The templates reach WNetAddConnection2 through the type Smbvol.NetApi (AddConnection),
    # which they Add-Type only when it does not exist. mpr.dll is Windows only: the fake host
    # defines that type first, its AddConnection answering from the model.
    if ($null -eq ('Smbvol.NetApi' -as [type])) {
        Add-Type -TypeDefinition @'
namespace Smbvol
{
    public static class NetApi
    {
        public static System.Func<string, string, System.Security.SecureString, int> Handler;

        public static int AddConnection(string remoteName, string userName, System.Security.SecureString password)
        {
            return Handler(remoteName, userName, password);
        }
    }
}
'@
    }
    [Smbvol.NetApi]::Handler = [System.Func[string, string, securestring, int]] {
        param($RemoteName, $UserName, $Password)
        return (Add-FakeUserConnection -RemoteName $RemoteName -UserName $UserName -Password $Password)
    }
}

Set-FakeSmbModuleVariant
if (-not (Test-FakeGlobalMappingSupported) -or $null -ne ('Smbvol.NetApi' -as [type])) {
    Initialize-FakeNetApi
}

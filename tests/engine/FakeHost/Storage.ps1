# The Storage and NetTCPIP modules of the fake host: the host's disks (MSFT_Disk), its
# initiator ports (MSFT_InitiatorPort), its IP addresses (MSFT_NetIPAddress), Win32_DiskDrive
# rows, and the MPIO (msdsm) registry keys. Dot-sourced by FakeHost.psm1; the iSCSI state helpers
# are in Iscsi.ps1.
#
# Which disks the host has (derived from the state, as Windows would show them):
# - disk 0, the boot and system disk (unless a LUN table uses number 0);
# - the disk of every LUN of a target with at least one session (state.iscsi.targets[].luns:
#   LUN -> disk number); it is offline (SAN policy OfflineShared, Windows Server's default for
#   disks on a shared bus) unless its number is in state.iscsi.online_disks;
# - every other disk number a VM holds as a passthrough disk (a local disk of the host).
# Set-Disk -IsOffline moves a number between state.iscsi.offline_disks and online_disks (a disk's
# offline attribute persists, as partmgr keeps it: a LUN that comes back keeps it);
# state.iscsi.clustered_disks are cluster disks (IsClustered), read_only_disks have the read-only
# attribute (Set-Disk -IsReadOnly), access_paths {number: [paths]} are the access paths of the
# mounted partitions of an online disk (Get-Partition).

$script:DiskOnline = [uint16]53264
$script:DiskOffline = [uint16]53267
$script:StorageNamespace = 'ROOT/Microsoft/Windows/Storage'

function Get-FakeLunDiskNumbers {
    # Disk number -> @{ iqn; lun } of every LUN of every target (present or not).
    $out = @{}
    $targets = (Get-FakeIscsi)['targets']
    foreach ($iqn in @($targets.Keys)) {
        $luns = $targets[$iqn]['luns']
        if ($null -eq $luns) {
            continue
        }
        foreach ($lun in @($luns.Keys)) {
            $out[[long]$luns[$lun]] = @{ iqn = [string]$iqn; lun = [long]$lun }
        }
    }
    return $out
}

function Get-FakeHostDisks {
    # The disks the host has now, by number: @{ number; kind = boot|iscsi|local; iqn; lun }.
    $luns = Get-FakeLunDiskNumbers
    $disks = Microsoft.PowerShell.Utility\New-Object -TypeName 'System.Collections.Generic.SortedDictionary[long,object]'
    if (-not $luns.ContainsKey([long]0)) {
        $disks[0] = @{ number = [long]0; kind = 'boot'; iqn = $null; lun = [long]0 }
    }
    foreach ($number in @($luns.Keys)) {
        $lun = $luns[$number]
        if (@(Get-FakeIscsiSessionsOf -Iqn $lun.iqn).Count -gt 0) {
            $disks[[long]$number] = @{ number = [long]$number; kind = 'iscsi'; iqn = $lun.iqn; lun = $lun.lun }
        }
    }
    $state = Get-FakeState
    if ($state.ContainsKey('vms') -and $null -ne $state['vms']) {
        foreach ($vm in @($state['vms'].Values)) {
            foreach ($disk in @($vm['disks'])) {
                if ($null -eq $disk -or $null -eq $disk['disk_number']) {
                    continue
                }
                $number = [long]$disk['disk_number']
                if (-not $luns.ContainsKey($number) -and -not $disks.ContainsKey($number)) {
                    $disks[$number] = @{ number = $number; kind = 'local'; iqn = $null; lun = [long]0 }
                }
            }
        }
    }
    return @($disks.Values)
}

function Test-FakeDiskOffline {
    param([hashtable]$Disk)
    if ($Disk.kind -ne 'iscsi') {
        # Local disks are online, except a passthrough disk, which Hyper-V needs offline.
        return ($Disk.kind -eq 'local' -and (Get-FakeIscsiList -Name 'online_disks') -notcontains $Disk.number)
    }
    return ((Get-FakeIscsiList -Name 'online_disks') -notcontains $Disk.number)
}

function Get-FakeDiskHex {
    # A stable hexadecimal text for a disk's identifiers.
    param([string]$Seed, [int]$Length)
    $bytes = [System.Security.Cryptography.SHA256]::HashData([System.Text.Encoding]::UTF8.GetBytes($Seed))
    return ([System.Convert]::ToHexString($bytes)).Substring(0, $Length)
}

function New-FakeDiskInstance {
    # An MSFT_Disk as Get-Disk returns it (root/Microsoft/Windows/Storage; BusType, HealthStatus,
    # OperationalStatus, PartitionStyle, OfflineReason are the class's UInt16 codes).
    param([hashtable]$Disk)
    $offline = Test-FakeDiskOffline -Disk $Disk
    $number = [uint32]$Disk.number
    if ($Disk.kind -eq 'iscsi') {
        $hex = Get-FakeDiskHex -Seed ($Disk.iqn.ToLowerInvariant() + '/' + [string]$Disk.lun) -Length 25
        $uniqueId = '6001405' + $hex
        $path = '\\?\scsi#disk&ven_lio-org&prod_iblock#1&' + $hex.Substring(0, 8).ToLowerInvariant() + '&0&00000' + [string]$Disk.lun + '#{53f56307-b6bf-11d0-94f2-00a0c91efb8b}'
        $properties = [ordered]@{
            BusType = [uint16]9; FriendlyName = 'LIO-ORG IBLOCK'; Manufacturer = 'LIO-ORG'; Model = 'IBLOCK'
            SerialNumber = $hex.Substring(0, 8).ToLowerInvariant() + '-' + $hex.Substring(8, 4).ToLowerInvariant() + '-' + $hex.Substring(12, 4).ToLowerInvariant()
            Location = 'Integrated : Adapter 1 : Port 0 : Target 0 : LUN ' + [string]$Disk.lun
            Size = [uint64]10737418240; PartitionStyle = [uint16](2 * [int](@(Get-FakeDiskAccessPaths -Number $Disk.number).Count -gt 0))
            NumberOfPartitions = [uint32]@(Get-FakePartitionRows -Disk $Disk).Count
            IsBoot = $false; IsSystem = $false; BootFromDisk = $false; UniqueIdFormat = [uint16]3
        }
    } else {
        $hex = Get-FakeDiskHex -Seed ('local/' + [string]$Disk.number) -Length 32
        $uniqueId = $hex
        $path = '\\?\scsi#disk&ven_msft&prod_virtual_disk#5&' + $hex.Substring(0, 8).ToLowerInvariant() + '&0&00000' + [string]$Disk.number + '#{53f56307-b6bf-11d0-94f2-00a0c91efb8b}'
        $boot = ($Disk.kind -eq 'boot')
        $properties = [ordered]@{
            BusType = [uint16]10; FriendlyName = 'Msft Virtual Disk'; Manufacturer = 'Msft'; Model = 'Virtual Disk'
            SerialNumber = $hex.Substring(0, 20); Location = 'Integrated : Adapter 0 : Port 0 : Target 0 : LUN ' + [string]$Disk.number
            Size = [uint64]136365211648; PartitionStyle = [uint16]2; NumberOfPartitions = [uint32]([int]$boot * 3)
            IsBoot = $boot; IsSystem = $boot; BootFromDisk = $boot; UniqueIdFormat = [uint16]8
        }
    }
    $properties['ObjectId'] = '{1}\\' + [string](Get-FakeHost)['name'] + '\root/Microsoft/Windows/Storage/Providers_v2\WSP_Disk.ObjectId="{' + (Get-FakeDiskHex -Seed 'provider' -Length 8).ToLowerInvariant() + '-0000-0000-0000-000000000000}:DI:' + $path + '"'
    $properties['Number'] = $number
    $properties['DiskNumber'] = $number
    $properties['UniqueId'] = $uniqueId
    $properties['Path'] = $path
    $properties['IsOffline'] = [bool]$offline
    $properties['OfflineReason'] = [uint16]([int]$offline)
    $properties['IsReadOnly'] = ((Get-FakeIscsiList -Name 'read_only_disks') -contains $Disk.number)
    $properties['IsClustered'] = ((Get-FakeIscsiList -Name 'clustered_disks') -contains $Disk.number)
    $properties['IsHighlyAvailable'] = $false
    $properties['IsScaleOut'] = $false
    $properties['HealthStatus'] = [uint16]0
    $properties['OperationalStatus'] = [uint16[]]@($(if ($offline) { $script:DiskOffline } else { $script:DiskOnline }))
    $properties['LogicalSectorSize'] = [uint32]512
    $properties['PhysicalSectorSize'] = [uint32]4096
    $properties['AllocatedSize'] = [uint64]0
    $properties['ProvisioningType'] = [uint16]2
    $properties['Signature'] = $null
    $properties['Guid'] = $null
    $properties['FirmwareVersion'] = '4.0'
    return New-FakeCimInstance -ClassName 'MSFT_Disk' -Namespace $script:StorageNamespace -Property $properties
}

function New-FakeNotFoundRecord {
    # What a CDXML query writes when a filter matches nothing (Microsoft.PowerShell.Cmdletization
    # QueryJobBase/ClientSideQuery): CimJobException, category ObjectNotFound, error id
    # CmdletizationQuery_NotFound[_<Property>] (the cmdlet name is appended by WriteError).
    param([string]$ClassName, [string]$PropertyName, $Value, [string]$QueryDescription)
    if ([string]::IsNullOrEmpty($PropertyName)) {
        $message = 'No matching ' + $ClassName + ' objects found by ' + $QueryDescription + '. Verify query parameters and retry.'
        $exception = Microsoft.PowerShell.Utility\New-Object -TypeName Microsoft.PowerShell.Cmdletization.Cim.CimJobException -ArgumentList $message
        return New-FakeErrorRecord -Exception $exception -ErrorId 'CmdletizationQuery_NotFound' -Category 'ObjectNotFound'
    }
    $message = 'No ' + $ClassName + ' objects found with property ''' + $PropertyName + ''' equal to ''' + [string]$Value + '''.  Verify the value of the property and retry.'
    $exception = Microsoft.PowerShell.Utility\New-Object -TypeName Microsoft.PowerShell.Cmdletization.Cim.CimJobException -ArgumentList $message
    return New-FakeErrorRecord -Exception $exception -ErrorId ('CmdletizationQuery_NotFound_' + $PropertyName) -Category 'ObjectNotFound' -Target $Value
}

function Get-FakeAssociationDescription {
    # The query description of an association filter (CimJob_AssociationDescription).
    param([string]$ClassName, $Instance)
    return 'CIM query for enumerating instances of the ' + $script:StorageNamespace + '/' + $ClassName + ' class on the  CIM server, that are associated with the following instance: ' + (Get-FakeCimClassName -InputObject $Instance)
}

function Find-FakeDisk {
    param([long]$Number)
    foreach ($disk in @(Get-FakeHostDisks)) {
        if ($disk.number -eq $Number) {
            return $disk
        }
    }
    return $null
}

Register-FakeCmdlet -Name 'Get-Disk' -Body {
    param($Cmdlet, $Set, $P)
    switch ($Set) {
        'ByNumber' {
            if (-not $P.ContainsKey('Number')) {
                foreach ($disk in @(Get-FakeHostDisks)) {
                    New-FakeDiskInstance -Disk $disk
                }
                return
            }
            foreach ($number in @($P['Number'])) {
                $disk = Find-FakeDisk -Number ([long]$number)
                if ($null -eq $disk) {
                    Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakeNotFoundRecord -ClassName 'MSFT_Disk' -PropertyName 'Number' -Value ([uint32]$number))
                    continue
                }
                New-FakeDiskInstance -Disk $disk
            }
        }
        'ByiSCSISession' {
            $session = $P['iSCSISession']
            $found = @(Get-FakeSessionDisks -SessionIdentifier ([string]$session.SessionIdentifier))
            if ($found.Count -eq 0) {
                Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakeNotFoundRecord -ClassName 'MSFT_Disk' -QueryDescription (Get-FakeAssociationDescription -ClassName 'MSFT_Disk' -Instance $session))
                return
            }
            foreach ($disk in $found) {
                New-FakeDiskInstance -Disk $disk
            }
        }
        'ByUniqueId' {
            foreach ($id in @($P['UniqueId'])) {
                $hit = $null
                foreach ($disk in @(Get-FakeHostDisks)) {
                    $instance = New-FakeDiskInstance -Disk $disk
                    if ([string]::Equals([string]$instance.UniqueId, [string]$id, [System.StringComparison]::OrdinalIgnoreCase)) {
                        $hit = $instance
                    }
                }
                if ($null -eq $hit) {
                    Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakeNotFoundRecord -ClassName 'MSFT_Disk' -PropertyName 'UniqueId' -Value ([string]$id))
                    continue
                }
                $hit
            }
        }
        default {
            $record = New-FakeErrorRecord -Exception ('the fake host does not model Get-Disk -' + $Set.Substring(2) + ' yet') -ErrorId 'FakeHostNotModelled,Get-Disk' -Category 'NotImplemented'
            Stop-FakeCmdlet -Cmdlet $Cmdlet -ErrorRecord $record
        }
    }
}

function Set-FakeDiskOffline {
    # Set-Disk -IsOffline: the disk's number moves between offline_disks and online_disks.
    param([long]$Number, [bool]$Offline)
    $iscsi = Get-FakeIscsi
    $online = [System.Collections.Generic.List[long]]::new()
    foreach ($n in @($iscsi['online_disks'])) { if ($null -ne $n -and [long]$n -ne $Number) { $online.Add([long]$n) } }
    $offlineList = [System.Collections.Generic.List[long]]::new()
    foreach ($n in @($iscsi['offline_disks'])) { if ($null -ne $n -and [long]$n -ne $Number) { $offlineList.Add([long]$n) } }
    if ($Offline) {
        $offlineList.Add($Number)
    } else {
        $online.Add($Number)
    }
    $online.Sort()
    $offlineList.Sort()
    $iscsi['online_disks'] = @($online.ToArray())
    $iscsi['offline_disks'] = @($offlineList.ToArray())
    Save-FakeState
}

function Set-FakeDiskListed {
    # Puts disk $Number into (or out of) the state list state.iscsi.<Name>.
    param([string]$Name, [long]$Number, [bool]$Listed)
    $numbers = [System.Collections.Generic.List[long]]::new()
    foreach ($n in @(Get-FakeIscsiList -Name $Name)) {
        if ($n -ne $Number) {
            $numbers.Add($n)
        }
    }
    if ($Listed) {
        $numbers.Add($Number)
    }
    $numbers.Sort()
    (Get-FakeIscsi)[$Name] = @($numbers.ToArray())
    Save-FakeState
}

Register-FakeCmdlet -Name 'Set-Disk' -Body {
    param($Cmdlet, $Set, $P)
    $numbers = @()
    if ($P.ContainsKey('Number')) {
        $numbers = @([long]$P['Number'])
    } elseif ($P.ContainsKey('InputObject')) {
        $numbers = @($P['InputObject'] | ForEach-Object { [long]$_.Number })
    } else {
        $record = New-FakeErrorRecord -Exception ('the fake host does not model Set-Disk by ' + $Set + ' yet') -ErrorId 'FakeHostNotModelled,Set-Disk' -Category 'NotImplemented'
        Stop-FakeCmdlet -Cmdlet $Cmdlet -ErrorRecord $record
    }
    foreach ($number in $numbers) {
        $disk = Find-FakeDisk -Number $number
        if ($null -eq $disk) {
            Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakeNotFoundRecord -ClassName 'MSFT_Disk' -PropertyName 'Number' -Value ([uint32]$number))
            continue
        }
        if ($P.ContainsKey('IsOffline')) {
            Set-FakeDiskOffline -Number $number -Offline ([bool]$P['IsOffline'])
        }
        if ($P.ContainsKey('IsReadOnly')) {
            Set-FakeDiskListed -Name 'read_only_disks' -Number $number -Listed ([bool]$P['IsReadOnly'])
        }
    }
}

function Get-FakeDiskAccessPaths {
    # state.iscsi.access_paths[n]: the access paths of disk n's mounted partitions.
    param([long]$Number)
    $iscsi = Get-FakeIscsi
    if (-not $iscsi.ContainsKey('access_paths') -or $null -eq $iscsi['access_paths']) {
        return
    }
    foreach ($key in @($iscsi['access_paths'].Keys)) {
        if ([long]$key -eq $Number) {
            foreach ($path in @($iscsi['access_paths'][$key])) {
                if ($null -ne $path) {
                    [string]$path
                }
            }
        }
    }
}

function Get-FakePartitionRows {
    # The partitions of a disk with mounted partitions: the Microsoft reserved partition and one
    # basic data partition with the access paths (none while the disk is offline: its volumes
    # are not mounted). A disk without access paths has no partitions.
    param([hashtable]$Disk)
    $paths = @(Get-FakeDiskAccessPaths -Number $Disk.number)
    if ($Disk.kind -eq 'boot') {
        $paths = @('C:\')
    }
    if ($paths.Count -eq 0) {
        return
    }
    if (Test-FakeDiskOffline -Disk $Disk) {
        $paths = @()
    }
    @{ number = 1; type = 'Reserved'; gpt = '{e3c9e316-0b5c-4db8-817d-f92df00215ae}'; offset = [uint64]17408; size = [uint64]16759808; paths = @() }
    @{ number = 2; type = 'Basic'; gpt = '{ebd0a0a2-b9e5-4433-87c0-68b6b72699c7}'; offset = [uint64]16777216; size = [uint64]10720641024; paths = $paths }
}

function New-FakePartitionInstance {
    # An MSFT_Partition (ROOT/Microsoft/Windows/Storage) as Get-Partition returns it.
    param([hashtable]$Disk, [hashtable]$Row)
    $letter = [char]0
    foreach ($path in @($Row.paths)) {
        if ([regex]::IsMatch([string]$path, '^[A-Za-z]:\\$')) {
            $letter = [char]([string]$path).Substring(0, 1).ToUpperInvariant()
        }
    }
    $diskInstance = New-FakeDiskInstance -Disk $Disk
    return New-FakeCimInstance -ClassName 'MSFT_Partition' -Namespace $script:StorageNamespace -Property ([ordered]@{
        DiskNumber = [uint32]$Disk.number
        PartitionNumber = [uint32]$Row.number
        DiskId = [string]$diskInstance.Path
        DriveLetter = $letter
        AccessPaths = [string[]]@($Row.paths)
        Offset = $Row.offset
        Size = $Row.size
        Type = $Row.type
        GptType = $Row.gpt
        MbrType = $null
        IsActive = $false
        IsBoot = ($Disk.kind -eq 'boot' -and $Row.number -eq 2)
        IsSystem = $false
        IsHidden = $false
        IsOffline = [bool]$diskInstance.IsOffline
        IsReadOnly = [bool]$diskInstance.IsReadOnly
        IsShadowCopy = $false
        NoDefaultDriveLetter = $false
        OperationalStatus = $(if ([bool]$diskInstance.IsOffline) { 'Offline' } else { 'Online' })
        TransitionState = [uint16]1
    })
}

Register-FakeCmdlet -Name 'Get-Partition' -Body {
    param($Cmdlet, $Set, $P)
    if ($Set -ne 'ByNumber' -and $Set -ne 'ByDisk') {
        $record = New-FakeErrorRecord -Exception ('the fake host does not model Get-Partition by ' + $Set + ' yet') -ErrorId 'FakeHostNotModelled,Get-Partition' -Category 'NotImplemented'
        Stop-FakeCmdlet -Cmdlet $Cmdlet -ErrorRecord $record
    }
    $numbers = @()
    if ($Set -eq 'ByDisk') {
        $numbers = @([long]$P['Disk'].Number)
    } elseif ($P.ContainsKey('DiskNumber')) {
        $numbers = @($P['DiskNumber'] | ForEach-Object { [long]$_ })
    } else {
        $numbers = @(Get-FakeHostDisks | ForEach-Object { $_.number })
    }
    foreach ($number in $numbers) {
        $disk = Find-FakeDisk -Number $number
        $rows = @()
        if ($null -ne $disk) {
            $rows = @(Get-FakePartitionRows -Disk $disk)
        }
        if ($P.ContainsKey('PartitionNumber')) {
            $wanted = @($P['PartitionNumber'] | ForEach-Object { [int]$_ })
            $rows = @($rows | Where-Object { $wanted -contains [int]$_.number })
        }
        if ($rows.Count -eq 0) {
            if ($P.ContainsKey('DiskNumber') -or $Set -eq 'ByDisk') {
                Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakeNotFoundRecord -ClassName 'MSFT_Partition' -PropertyName 'DiskNumber' -Value ([uint32]$number))
            }
            continue
        }
        foreach ($row in $rows) {
            New-FakePartitionInstance -Disk $disk -Row $row
        }
    }
}

Register-FakeCmdlet -Name 'Update-HostStorageCache' -Body {
    # Rescans the host's storage: the model's disks are always current, so nothing changes.
    param($Cmdlet, $Set, $P)
}

function Get-FakeDiskDrives {
    # Win32_DiskDrive rows {Index, SCSILogicalUnit} of the host's disks (read by
    # Get-FakeCimInstances in Windows.ps1): an iSCSI disk's logical unit is its LUN.
    foreach ($disk in @(Get-FakeHostDisks)) {
        @{ Index = [uint32]$disk.number; SCSILogicalUnit = [uint16]$disk.lun; DeviceID = '\\.\PHYSICALDRIVE' + [string]$disk.number }
    }
}

# --------------------------------------------------------------------------------------------
# Initiator ports (Storage\Get-InitiatorPort)
# --------------------------------------------------------------------------------------------

$script:ConnectionTypes = @{ 'Other' = 0; 'FibreChannel' = 1; 'iSCSI' = 2; 'SAS' = 3 }

function New-FakeInitiatorPort {
    # The Microsoft iSCSI initiator's port (MSFT_InitiatorPort; ConnectionType 2 = iSCSI).
    $iqn = Get-FakeInitiatorIqn
    return New-FakeCimInstance -ClassName 'MSFT_InitiatorPort' -Namespace $script:StorageNamespace -Property ([ordered]@{
        ObjectId = '{1}\\' + [string](Get-FakeHost)['name'] + '\root/Microsoft/Windows/Storage/Providers_v2\SPACES_InitiatorPort.ObjectId="ROOT\ISCSIPRT\0000_0"'
        InstanceName = 'ROOT\ISCSIPRT\0000_0'
        NodeAddress = $iqn
        PortAddress = 'ffffffffffffffff'
        ConnectionType = [uint16]2
        OperationalStatus = [uint16[]]@(2)
        AlternateNodeAddress = $null
        AlternatePortAddress = $null
        OtherConnectionTypeDescription = $null
    })
}

Register-FakeCmdlet -Name 'Get-InitiatorPort' -Body {
    param($Cmdlet, $Set, $P)
    $ports = @(New-FakeInitiatorPort)
    if ($P.ContainsKey('ConnectionType')) {
        foreach ($type in @($P['ConnectionType'])) {
            $code = $script:ConnectionTypes[[string]$type]
            $hits = @($ports | Where-Object { [int]$_.ConnectionType -eq $code })
            if ($hits.Count -eq 0) {
                Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakeNotFoundRecord -ClassName 'MSFT_InitiatorPort' -PropertyName 'ConnectionType' -Value ([string]$type))
                continue
            }
            $hits
        }
        return
    }
    if ($P.ContainsKey('NodeAddress')) {
        foreach ($address in @($P['NodeAddress'])) {
            $hits = @($ports | Where-Object { [string]::Equals([string]$_.NodeAddress, [string]$address, [System.StringComparison]::OrdinalIgnoreCase) })
            if ($hits.Count -eq 0) {
                Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakeNotFoundRecord -ClassName 'MSFT_InitiatorPort' -PropertyName 'NodeAddress' -Value ([string]$address))
                continue
            }
            $hits
        }
        return
    }
    $ports
}

# --------------------------------------------------------------------------------------------
# IP addresses (NetTCPIP\Get-NetIPAddress)
# --------------------------------------------------------------------------------------------

function New-FakeNetIPAddress {
    # An MSFT_NetIPAddress (root/StandardCimv2; AddressFamily 2 = IPv4, 23 = IPv6).
    param([string]$Address, [int]$Index, [string]$Alias, [int]$Prefix, [int]$PrefixOrigin, [int]$SuffixOrigin)
    $family = [uint16]2
    if ($Address.Contains(':')) {
        $family = [uint16]23
    }
    return New-FakeCimInstance -ClassName 'MSFT_NetIPAddress' -Namespace 'ROOT/StandardCimv2' -Property ([ordered]@{
        IPAddress = $Address
        InterfaceIndex = [uint32]$Index
        InterfaceAlias = $Alias
        AddressFamily = $family
        Type = [byte]1
        PrefixLength = [byte]$Prefix
        PrefixOrigin = [byte]$PrefixOrigin
        SuffixOrigin = [byte]$SuffixOrigin
        AddressState = [byte]4
        ValidLifetime = [timespan]::MaxValue
        PreferredLifetime = [timespan]::MaxValue
        SkipAsSource = $false
        PolicyStore = 'ActiveStore'
    })
}

function Get-FakeNetIPAddresses {
    # The host's addresses on 'Ethernet' (index 4, with its IPv6 link-local address) and the
    # loopback interface (index 1).
    $hostInfo = Get-FakeHost
    $rows = Microsoft.PowerShell.Utility\New-Object -TypeName System.Collections.Generic.List[object]
    $rows.Add((New-FakeNetIPAddress -Address 'fe80::215:5dff:fe00:1f' -Index 4 -Alias 'Ethernet' -Prefix 64 -PrefixOrigin 2 -SuffixOrigin 4))
    foreach ($address in @($hostInfo['addresses'])) {
        if ($null -eq $address -or [string]$address -eq '') {
            continue
        }
        $text = [string]$address
        $prefix = 24
        if ($text.Contains(':')) {
            $prefix = 64
        }
        $rows.Add((New-FakeNetIPAddress -Address $text -Index 4 -Alias 'Ethernet' -Prefix $prefix -PrefixOrigin 1 -SuffixOrigin 1))
    }
    $rows.Add((New-FakeNetIPAddress -Address '::1' -Index 1 -Alias 'Loopback Pseudo-Interface 1' -Prefix 128 -PrefixOrigin 2 -SuffixOrigin 2))
    $rows.Add((New-FakeNetIPAddress -Address '127.0.0.1' -Index 1 -Alias 'Loopback Pseudo-Interface 1' -Prefix 8 -PrefixOrigin 2 -SuffixOrigin 2))
    return $rows.ToArray()
}

Register-FakeCmdlet -Name 'Get-NetIPAddress' -Body {
    param($Cmdlet, $Set, $P)
    $rows = @(Get-FakeNetIPAddresses)
    if ($P.ContainsKey('AddressFamily')) {
        $families = @($P['AddressFamily'] | ForEach-Object { if ([string]$_ -eq 'IPv6') { 23 } else { 2 } })
        $rows = @($rows | Where-Object { $families -contains [int]$_.AddressFamily })
    }
    if ($P.ContainsKey('InterfaceIndex')) {
        $indexes = @($P['InterfaceIndex'] | ForEach-Object { [int]$_ })
        $rows = @($rows | Where-Object { $indexes -contains [int]$_.InterfaceIndex })
    }
    if ($P.ContainsKey('IPAddress')) {
        foreach ($wanted in @($P['IPAddress'])) {
            $hits = @($rows | Where-Object { [string]::Equals([string]$_.IPAddress, [string]$wanted, [System.StringComparison]::OrdinalIgnoreCase) })
            if ($hits.Count -eq 0) {
                Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakeNotFoundRecord -ClassName 'MSFT_NetIPAddress' -PropertyName 'IPAddress' -Value ([string]$wanted))
                continue
            }
            $hits
        }
        return
    }
    $rows
}

# --------------------------------------------------------------------------------------------
# MPIO: the msdsm driver's registry keys
# --------------------------------------------------------------------------------------------

$script:MsdsmKey = 'HKLM:\SYSTEM\CurrentControlSet\Services\msdsm'

function Sync-FakeMpioRegistry {
    # With Multipath-IO installed (state.iscsi.mpio) the msdsm service key exists, and
    # Enable-MSDSMAutomaticClaim -BusType iSCSI has put MSFT2005iSCSIBusType_0x9 into
    # msdsm\Parameters\DsmSupportedDeviceList (REG_MULTI_SZ). Registry keys the runner set are
    # left as they are.
    param([hashtable]$Registry)
    $state = Get-FakeState
    if (-not $state.ContainsKey('iscsi') -or $null -eq $state['iscsi'] -or -not [bool]$state['iscsi']['mpio']) {
        return
    }
    $present = @{}
    foreach ($key in @($Registry.Keys)) {
        $present[([string]$key).ToLowerInvariant()] = $true
    }
    if (-not $present.ContainsKey($script:MsdsmKey.ToLowerInvariant())) {
        $Registry[$script:MsdsmKey] = @{}
    }
    $parameters = $script:MsdsmKey + '\Parameters'
    if (-not $present.ContainsKey($parameters.ToLowerInvariant())) {
        $Registry[$parameters] = @{ DsmSupportedDeviceList = @('MSFT2005iSCSIBusType_0x9') }
    }
}

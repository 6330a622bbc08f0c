# Hyper-V: VMs, their controllers, hard disk drives and DVD drives, checkpoint differencing
# disks (Get-VHD), as the Hyper-V module's cmdlets show and change them. Dot-sourced by
# FakeHost.psm1; every shape is listed in SHAPES.md (section Hyper-V).
#
# state.vms = {Name: {id, generation, running, state (Saved/Paused), scsi_controllers,
#   configuration_location, snapshot_file_location, smart_paging_file_path,
#   dvd_drives: [{controller_type, controller_number, controller_location, path}],
#   disks: [{controller_type, controller_number, controller_location, path, maximum_iops,
#            minimum_iops, disk_number, image}]}}
# A disk's image is set only for a checkpoint's differencing disk (.avhd/.avhdx): the image at
# the end of its parent chain (Get-VHD ParentPath); image null there = a chain that cannot be read.
# Whether a file exists and the host may open it is the SMB part's file model
# (Get-FakeFileAccess in Smb.ps1).

$script:HyperVDefaultFolder = 'C:\ProgramData\Microsoft\Windows\Hyper-V'
$script:ScsiLocations = 64
$script:IdeLocations = 2
$script:MaxScsiControllers = 4

# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------

function New-FakeHyperVError {
    # An error of the Hyper-V module: a VirtualizationException, FullyQualifiedErrorId
    # '<reason>,Microsoft.HyperV.PowerShell.Commands.<Command>' (Get-VHD: Microsoft.Vhd.PowerShell.Cmdlets).
    param([string]$Message, [string]$Reason, [string]$Command, [string]$Category = 'NotSpecified', $Target = $null)
    $namespace = 'Microsoft.HyperV.PowerShell.Commands.'
    if ($Command -eq 'GetVHD') {
        $namespace = 'Microsoft.Vhd.PowerShell.Cmdlets.'
    }
    $exception = New-FakeVirtualizationException -Message $Message
    return New-FakeErrorRecord -Exception $exception -ErrorId ($Reason + ',' + $namespace + $Command) -Category $Category -Target $Target
}

function Write-FakeHyperVError {
    # Hyper-V's cmdlets report a failed object as a non-terminating error.
    param($Cmdlet, [string]$Message, [string]$Reason, [string]$Command, [string]$Category = 'NotSpecified', $Target = $null)
    Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakeHyperVError -Message $Message -Reason $Reason -Command $Command -Category $Category -Target $Target)
}

function Get-FakeHyperVCommandName {
    # 'Add-VMHardDiskDrive' -> 'AddVMHardDiskDrive' (the cmdlet class name).
    param([string]$Name)
    return $Name.Replace('-', '')
}

function Get-FakeHexCode {
    # The HRESULT text Hyper-V appends to a WMI job error, e.g. (0x80070020).
    param([int]$Code)
    return '(0x8007' + $Code.ToString('X4') + ')'
}

# --------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------

function Get-FakeVMTable {
    return Get-FakeStateTable -Name 'vms'
}

function Get-FakeVMNames {
    # Every VM name, in Get-VM order (by name, case-insensitive).
    $table = Get-FakeVMTable
    return @($table.Keys | Sort-Object -Property @{ Expression = { ([string]$_).ToLowerInvariant() } })
}

function Get-FakeVMSpecValue {
    param([System.Collections.IDictionary]$Spec, [string]$Key, $Default = $null)
    if ($Spec.ContainsKey($Key) -and $null -ne $Spec[$Key]) {
        return $Spec[$Key]
    }
    return $Default
}

function Get-FakeVMStateName {
    # Off, Running, or the state the VM is in (Saved, Paused).
    param([System.Collections.IDictionary]$Spec)
    $other = [string](Get-FakeVMSpecValue -Spec $Spec -Key 'state' -Default '')
    if ($other -ne '') {
        return $other
    }
    if ([bool](Get-FakeVMSpecValue -Spec $Spec -Key 'running' -Default $false)) {
        return 'Running'
    }
    return 'Off'
}

function Get-FakeVMDisks {
    param([System.Collections.IDictionary]$Spec)
    if (-not $Spec.ContainsKey('disks') -or $null -eq $Spec['disks']) {
        $Spec['disks'] = @()
    }
    return @($Spec['disks'])
}

function Get-FakeVMDvdSpecs {
    param([System.Collections.IDictionary]$Spec)
    if (-not $Spec.ContainsKey('dvd_drives') -or $null -eq $Spec['dvd_drives']) {
        return @()
    }
    return @($Spec['dvd_drives'])
}

function Get-FakeScsiCount {
    param([System.Collections.IDictionary]$Spec)
    return [int](Get-FakeVMSpecValue -Spec $Spec -Key 'scsi_controllers' -Default 0)
}

function Get-FakeSlotOrder {
    # Controller order of Get-VMHardDiskDrive: IDE before SCSI, then number and location.
    param([System.Collections.IDictionary]$Drive)
    $type = 1
    if ([string]$Drive['controller_type'] -eq 'IDE') {
        $type = 0
    }
    return ($type * 1000000) + ([int]$Drive['controller_number'] * 1000) + [int]$Drive['controller_location']
}

function Test-FakeSlotTaken {
    param([System.Collections.IDictionary]$Spec, [string]$Type, [int]$Number, [int]$Location)
    foreach ($drive in @(Get-FakeVMDisks -Spec $Spec) + @(Get-FakeVMDvdSpecs -Spec $Spec)) {
        if ([string]$drive['controller_type'] -eq $Type -and [int]$drive['controller_number'] -eq $Number -and [int]$drive['controller_location'] -eq $Location) {
            return $true
        }
    }
    return $false
}

function Test-FakeCheckpointPath {
    param([string]$Path)
    if ([string]::IsNullOrEmpty($Path)) {
        return $false
    }
    $lower = $Path.ToLowerInvariant()
    return $lower.EndsWith('.avhd') -or $lower.EndsWith('.avhdx')
}

$script:StableGuids = @{}

function Get-FakeStableGuid {
    # A GUID derived from $Text (device instance ids stay the same from call to call).
    param([string]$Text)
    $key = $Text.ToLowerInvariant()
    $known = $script:StableGuids[$key]
    if ($null -ne $known) {
        return $known
    }
    $md5 = [System.Security.Cryptography.MD5]::Create()
    try {
        $guid = [guid]::new($md5.ComputeHash([System.Text.Encoding]::UTF8.GetBytes($key)))
    } finally {
        $md5.Dispose()
    }
    $script:StableGuids[$key] = $guid
    return $guid
}

# --------------------------------------------------------------------------------------------
# Objects
# --------------------------------------------------------------------------------------------

function Get-FakeComputerName {
    return ([string](Get-FakeHost)['name']).ToUpperInvariant()
}

function New-FakeHardDiskDriveObject {
    param([string]$VMName, [System.Collections.IDictionary]$Spec, [System.Collections.IDictionary]$Disk, [string]$ComputerName = '')
    if ($ComputerName -eq '') {
        $ComputerName = Get-FakeComputerName
    }
    $vmId = [guid][string]$Spec['id']
    $type = [string]$Disk['controller_type']
    $number = [int]$Disk['controller_number']
    $location = [int]$Disk['controller_location']
    $controller = Get-FakeStableGuid -Text ([string]$vmId + ':' + $type + ':' + [string]$number)
    $diskNumber = $null
    if ($null -ne $Disk['disk_number']) {
        $diskNumber = [int]$Disk['disk_number']
    }
    $maximum = $Disk['maximum_iops']
    $minimum = $Disk['minimum_iops']
    if ($null -eq $maximum) {
        $maximum = 0
    }
    if ($null -eq $minimum) {
        $minimum = 0
    }
    $drive = [Microsoft.HyperV.PowerShell.HardDiskDrive]@{
        VMName = $VMName
        VMId = $vmId
        VMSnapshotId = [guid]::Empty
        ComputerName = $ComputerName
        ControllerType = [Microsoft.HyperV.PowerShell.ControllerType]$type
        ControllerNumber = $number
        ControllerLocation = $location
        DiskNumber = $diskNumber
        MaximumIOPS = [uint64][long]$maximum
        MinimumIOPS = [uint64][long]$minimum
        Name = 'Hard Drive on ' + $type + ' controller number ' + [string]$number + ' at location ' + [string]$location
        Id = 'Microsoft:' + ([string]$vmId).ToUpperInvariant() + '\' + ([string]$controller).ToUpperInvariant() + '\' + [string]$number + '\' + [string]$location + '\D'
        SupportPersistentReservations = $false
    }
    if ($null -ne $Disk['path']) {
        $drive.Path = [string]$Disk['path']
    }
    return $drive
}

function New-FakeDvdDriveObject {
    param([string]$VMName, [System.Collections.IDictionary]$Spec, [System.Collections.IDictionary]$Dvd)
    $vmId = [guid][string]$Spec['id']
    $type = [string]$Dvd['controller_type']
    $number = [int]$Dvd['controller_number']
    $location = [int]$Dvd['controller_location']
    $controller = Get-FakeStableGuid -Text ([string]$vmId + ':' + $type + ':' + [string]$number)
    $path = $null
    $media = [Microsoft.HyperV.PowerShell.DvdMediaType]::None
    if ($Dvd.ContainsKey('path') -and -not [string]::IsNullOrEmpty([string]$Dvd['path'])) {
        $path = [string]$Dvd['path']
        $media = [Microsoft.HyperV.PowerShell.DvdMediaType]::ISO
    }
    $drive = New-FakeHyperVObject -TypeName 'Microsoft.HyperV.PowerShell.DvdDrive' -Property @{
        VMName = $VMName
        VMId = $vmId
        VMSnapshotId = [guid]::Empty
        ComputerName = Get-FakeComputerName
        ControllerType = [Microsoft.HyperV.PowerShell.ControllerType]$type
        ControllerNumber = $number
        ControllerLocation = $location
        DvdMediaType = $media
        Name = 'DVD Drive on ' + $type + ' controller number ' + [string]$number + ' at location ' + [string]$location
        Id = 'Microsoft:' + ([string]$vmId).ToUpperInvariant() + '\' + ([string]$controller).ToUpperInvariant() + '\' + [string]$number + '\' + [string]$location + '\D'
    }
    $drive.Path = $path
    return $drive
}

function Get-FakeHardDiskDriveObjects {
    # The VM's hard disk drives in controller order (the state keeps them in that order).
    param([string]$VMName, [System.Collections.IDictionary]$Spec)
    $computer = Get-FakeComputerName
    foreach ($disk in @(Get-FakeVMDisks -Spec $Spec)) {
        New-FakeHardDiskDriveObject -VMName $VMName -Spec $Spec -Disk $disk -ComputerName $computer
    }
}

function Get-FakeDvdDriveObjects {
    param([string]$VMName, [System.Collections.IDictionary]$Spec)
    foreach ($dvd in @(Get-FakeVMDvdSpecs -Spec $Spec | Sort-Object -Property @{ Expression = { Get-FakeSlotOrder -Drive $_ } })) {
        New-FakeDvdDriveObject -VMName $VMName -Spec $Spec -Dvd $dvd
    }
}

function Set-FakeDiskOrder {
    # Keeps the VM's disks in controller order (as Get-VMHardDiskDrive lists them and the
    # state schema holds them).
    param([System.Collections.IDictionary]$Spec)
    $Spec['disks'] = @(Get-FakeVMDisks -Spec $Spec | Sort-Object -Property @{ Expression = { Get-FakeSlotOrder -Drive $_ } })
}

function New-FakeVMObject {
    param([string]$Name, [System.Collections.IDictionary]$Spec)
    $config = [string](Get-FakeVMSpecValue -Spec $Spec -Key 'configuration_location' -Default $script:HyperVDefaultFolder)
    $stateName = Get-FakeVMStateName -Spec $Spec
    $uptime = [System.TimeSpan]::Zero
    if ($stateName -eq 'Running') {
        $uptime = [System.TimeSpan]::FromHours(1)
    }
    $vm = New-FakeHyperVObject -TypeName 'Microsoft.HyperV.PowerShell.VirtualMachine' -Property @{
        Name = $Name
        Id = [guid][string]$Spec['id']
        Generation = [int](Get-FakeVMSpecValue -Spec $Spec -Key 'generation' -Default 2)
        State = [Microsoft.HyperV.PowerShell.VMState]$stateName
        Status = 'Operating normally'
        ComputerName = Get-FakeComputerName
        Path = $config
        ConfigurationLocation = $config
        SnapshotFileLocation = [string](Get-FakeVMSpecValue -Spec $Spec -Key 'snapshot_file_location' -Default $script:HyperVDefaultFolder)
        SmartPagingFilePath = [string](Get-FakeVMSpecValue -Spec $Spec -Key 'smart_paging_file_path' -Default $script:HyperVDefaultFolder)
        Uptime = $uptime
        VirtualMachineType = [Microsoft.HyperV.PowerShell.VirtualMachineType]::RealizedVirtualMachine
        HardDrives = [Microsoft.HyperV.PowerShell.HardDiskDrive[]]@(Get-FakeHardDiskDriveObjects -VMName $Name -Spec $Spec)
        DVDDrives = [Microsoft.HyperV.PowerShell.DvdDrive[]]@(Get-FakeDvdDriveObjects -VMName $Name -Spec $Spec)
    }
    # The Hyper-V module's type data: VMName and VMId are aliases of Name and Id.
    $vm | Add-Member -MemberType AliasProperty -Name 'VMName' -Value 'Name'
    $vm | Add-Member -MemberType AliasProperty -Name 'VMId' -Value 'Id'
    return $vm
}

function New-FakeControllerObject {
    # A VMScsiController or VMIdeController with the drives on it (hard disks and DVD drives;
    # $Drives: all of the VM's, when the caller has them already).
    param([string]$VMName, [System.Collections.IDictionary]$Spec, [string]$Type, [int]$Number, [object[]]$Drives = $null)
    $vmId = [guid][string]$Spec['id']
    $name = 'SCSI Controller'
    if ($Type -eq 'IDE') {
        $name = 'IDE Controller ' + [string]$Number
    }
    $guid = Get-FakeStableGuid -Text ([string]$vmId + ':' + $Type + ':' + [string]$Number)
    $properties = @{
        VMName = $VMName
        VMId = $vmId
        VMSnapshotId = [guid]::Empty
        ComputerName = Get-FakeComputerName
        ControllerNumber = $Number
        Name = $name
        Id = 'Microsoft:' + ([string]$vmId).ToUpperInvariant() + '\' + ([string]$guid).ToUpperInvariant() + '\' + [string]$Number
    }
    if ($Type -eq 'IDE') {
        $controller = [Microsoft.HyperV.PowerShell.VMIdeController]$properties
    } else {
        $controller = [Microsoft.HyperV.PowerShell.VMScsiController]$properties
    }
    if ($null -eq $Drives) {
        $Drives = @(Get-FakeHardDiskDriveObjects -VMName $VMName -Spec $Spec) + @(Get-FakeDvdDriveObjects -VMName $VMName -Spec $Spec)
    }
    $typeValue = [Microsoft.HyperV.PowerShell.ControllerType]$Type
    $on = Microsoft.PowerShell.Utility\New-Object -TypeName System.Collections.Generic.List[object]
    foreach ($drive in $Drives) {
        if ($drive.ControllerType -eq $typeValue -and $drive.ControllerNumber -eq $Number) {
            $on.Add($drive)
        }
    }
    # Drives is Drive[] on the real class, DvdDrive and HardDiskDrive both derive from Drive;
    # the compiled stand-in lacks DvdDrive's base, so the list is attached as the same member.
    $controller | Add-Member -MemberType NoteProperty -Name 'Drives' -Value ([object[]]$on.ToArray()) -Force
    return $controller
}

# --------------------------------------------------------------------------------------------
# Finding VMs
# --------------------------------------------------------------------------------------------

function Find-FakeVMNamesByPattern {
    # The VM names matching $Name as Hyper-V's -Name does: wildcards, case-insensitive.
    param([string]$Name)
    $found = @()
    $pattern = [System.Management.Automation.WildcardPattern]::new($Name, [System.Management.Automation.WildcardOptions]::IgnoreCase)
    foreach ($candidate in Get-FakeVMNames) {
        if ($pattern.IsMatch([string]$candidate)) {
            $found += [string]$candidate
        }
    }
    return $found
}

function Write-FakeVMNotFound {
    param($Cmdlet, [string]$Name, [string]$Command)
    Write-FakeHyperVError -Cmdlet $Cmdlet -Message ('Hyper-V was unable to find a virtual machine with name "' + $Name + '".') -Reason 'InvalidParameter' -Command $Command -Category 'InvalidArgument' -Target $Name
}

function Find-FakeVMNameById {
    param([guid]$Id)
    $table = Get-FakeVMTable
    foreach ($name in Get-FakeVMNames) {
        if ([guid][string]$table[$name]['id'] -eq $Id) {
            return [string]$name
        }
    }
    return $null
}

function Resolve-FakeVMNames {
    # The VM names a cmdlet acts on: -VMName (wildcards; a plain name that matches nothing is
    # Hyper-V's not-found error), -VM objects (by Id), -VMSnapshot (its VM), a controller object.
    param($Cmdlet, [System.Collections.IDictionary]$P, [string]$Command)
    $names = Microsoft.PowerShell.Utility\New-Object -TypeName System.Collections.Generic.List[string]
    if ($P.ContainsKey('VMName')) {
        foreach ($name in @($P['VMName'])) {
            $matched = @(Find-FakeVMNamesByPattern -Name ([string]$name))
            if ($matched.Count -eq 0 -and -not [System.Management.Automation.WildcardPattern]::ContainsWildcardCharacters([string]$name)) {
                Write-FakeVMNotFound -Cmdlet $Cmdlet -Name ([string]$name) -Command $Command
            }
            foreach ($m in $matched) {
                $names.Add($m)
            }
        }
    }
    foreach ($key in @('VM', 'VMSnapshot', 'VMDriveController')) {
        if (-not $P.ContainsKey($key)) {
            continue
        }
        foreach ($object in @($P[$key])) {
            $id = $object.Id
            if ($key -ne 'VM') {
                $id = $object.VMId
            }
            $name = Find-FakeVMNameById -Id ([guid]$id)
            if ($null -eq $name) {
                Write-FakeHyperVError -Cmdlet $Cmdlet -Message ('The operation cannot be performed because the object is not in a valid state: the virtual machine ''' + [string]$object.VMName + ''' no longer exists.') -Reason 'ObjectNotFound' -Command $Command -Category 'ObjectNotFound' -Target $object
                continue
            }
            $names.Add($name)
        }
    }
    return $names.ToArray()
}

function Get-FakeVMSpec {
    param([string]$Name)
    return (Get-FakeVMTable)[$Name]
}

# --------------------------------------------------------------------------------------------
# Get-VM
# --------------------------------------------------------------------------------------------

Register-FakeCmdlet -Name 'Get-VM' -Body {
    param($Cmdlet, $Set, $P)
    $table = Get-FakeVMTable
    if ($Set -eq 'Id') {
        if (-not $P.ContainsKey('Id')) {
            foreach ($name in Get-FakeVMNames) {
                New-FakeVMObject -Name $name -Spec $table[$name]
            }
            return
        }
        $name = Find-FakeVMNameById -Id ([guid]$P['Id'])
        if ($null -eq $name) {
            Write-FakeHyperVError -Cmdlet $Cmdlet -Message ('Hyper-V was unable to find a virtual machine with id "' + [string]$P['Id'] + '".') -Reason 'InvalidParameter' -Command 'GetVM' -Category 'InvalidArgument' -Target ([string]$P['Id'])
            return
        }
        return (New-FakeVMObject -Name $name -Spec $table[$name])
    }
    if ($Set -eq 'ClusterObject') {
        Write-FakeHyperVError -Cmdlet $Cmdlet -Message 'The fake host has no failover cluster.' -Reason 'InvalidParameter' -Command 'GetVM' -Category 'InvalidArgument'
        return
    }
    $names = @(Get-FakeVMNames)
    if ($P.ContainsKey('Name')) {
        $names = @(Resolve-FakeVMNames -Cmdlet $Cmdlet -P @{ VMName = $P['Name'] } -Command 'GetVM')
    }
    foreach ($name in $names) {
        New-FakeVMObject -Name $name -Spec $table[$name]
    }
}

# --------------------------------------------------------------------------------------------
# Checkpoints: Get-VMSnapshot
# --------------------------------------------------------------------------------------------

function New-FakeSnapshotObject {
    # A checkpoint (state vms[].checkpoints[]: {name, disks: [image paths], dvd_drives: [ISO
    # paths]}) with its drives as they were when it was taken: each hard disk refers to its
    # image (the VM's own drive now names the differencing disk in front of it). The state
    # keeps no slots for them: hard disks are listed on SCSI 0 (IDE 0 for Generation 1), DVD
    # drives after them.
    param([string]$VMName, [System.Collections.IDictionary]$Spec, [System.Collections.IDictionary]$Checkpoint)
    $vmId = [guid][string]$Spec['id']
    $name = [string]$Checkpoint['name']
    $snapshotId = Get-FakeStableGuid -Text ([string]$vmId + ':checkpoint:' + $name)
    $generation = [int](Get-FakeVMSpecValue -Spec $Spec -Key 'generation' -Default 2)
    $type = 'SCSI'
    if ($generation -eq 1) {
        $type = 'IDE'
    }
    $disks = @()
    $slot = 0
    foreach ($path in @(Get-FakeVMSpecValue -Spec $Checkpoint -Key 'disks' -Default @())) {
        $disk = @{ controller_type = $type; controller_number = 0; controller_location = $slot; path = [string]$path; maximum_iops = 0; minimum_iops = 0; disk_number = $null }
        if ($type -eq 'IDE') {
            $disk['controller_number'] = [int][math]::Floor($slot / 2)
            $disk['controller_location'] = $slot % 2
        }
        $drive = New-FakeHardDiskDriveObject -VMName $VMName -Spec $Spec -Disk $disk
        $drive.VMSnapshotId = $snapshotId
        $drive.VMSnapshotName = $name
        $disks += $drive
        $slot++
    }
    $dvds = @()
    foreach ($path in @(Get-FakeVMSpecValue -Spec $Checkpoint -Key 'dvd_drives' -Default @())) {
        $dvd = @{ controller_type = $type; controller_number = 0; controller_location = $slot; path = [string]$path }
        if ($type -eq 'IDE') {
            $dvd['controller_number'] = [int][math]::Floor($slot / 2)
            $dvd['controller_location'] = $slot % 2
        }
        $drive = New-FakeDvdDriveObject -VMName $VMName -Spec $Spec -Dvd $dvd
        $drive.VMSnapshotId = $snapshotId
        $drive.VMSnapshotName = $name
        $dvds += $drive
        $slot++
    }
    $snapshot = New-FakeHyperVObject -TypeName 'Microsoft.HyperV.PowerShell.VMSnapshot' -Property @{
        Name = $name
        Id = $snapshotId
        VMName = $VMName
        VMId = $vmId
        ComputerName = Get-FakeComputerName
        Generation = $generation
        SnapshotType = [Microsoft.HyperV.PowerShell.SnapshotType]::Standard
        State = [Microsoft.HyperV.PowerShell.VMState]::Off
        CreationTime = [datetime]'2026-01-01T00:00:00'
        Path = [string](Get-FakeVMSpecValue -Spec $Spec -Key 'snapshot_file_location' -Default $script:HyperVDefaultFolder)
        HardDrives = [Microsoft.HyperV.PowerShell.HardDiskDrive[]]$disks
        DVDDrives = [Microsoft.HyperV.PowerShell.DvdDrive[]]$dvds
    }
    return $snapshot
}

Register-FakeCmdlet -Name 'Get-VMSnapshot' -Body {
    param($Cmdlet, $Set, $P)
    $names = @()
    if ($Set -eq 'VMName' -or $Set -eq 'VMObject') {
        $names = @(Resolve-FakeVMNames -Cmdlet $Cmdlet -P $P -Command 'GetVMSnapshot')
    } elseif ($Set -eq 'Id') {
        $names = @(Get-FakeVMNames)
    } else {
        Write-FakeHyperVError -Cmdlet $Cmdlet -Message 'The fake host keeps no checkpoint tree (-ParentOf / -ChildOf).' -Reason 'InvalidParameter' -Command 'GetVMSnapshot' -Category 'InvalidArgument'
        return
    }
    $pattern = $null
    if ($P.ContainsKey('Name')) {
        $pattern = [System.Management.Automation.WildcardPattern]::new([string]$P['Name'], [System.Management.Automation.WildcardOptions]::IgnoreCase)
    }
    $found = 0
    foreach ($vmName in $names) {
        $spec = Get-FakeVMSpec -Name $vmName
        foreach ($checkpoint in @(Get-FakeVMSpecValue -Spec $spec -Key 'checkpoints' -Default @())) {
            if ($null -ne $pattern -and -not $pattern.IsMatch([string]$checkpoint['name'])) {
                continue
            }
            $snapshot = New-FakeSnapshotObject -VMName $vmName -Spec $spec -Checkpoint $checkpoint
            if ($Set -eq 'Id' -and $snapshot.Id -ne [guid]$P['Id']) {
                continue
            }
            $found++
            $snapshot
        }
    }
    if ($found -eq 0 -and $Set -eq 'Id') {
        Write-FakeHyperVError -Cmdlet $Cmdlet -Message ('Hyper-V was unable to find a checkpoint with id "' + [string]$P['Id'] + '".') -Reason 'InvalidParameter' -Command 'GetVMSnapshot' -Category 'InvalidArgument' -Target ([string]$P['Id'])
    }
}

# --------------------------------------------------------------------------------------------
# Drives: Get-VMHardDiskDrive, Get-VMDvdDrive
# --------------------------------------------------------------------------------------------

function Test-FakeDriveFilter {
    param($Drive, [System.Collections.IDictionary]$P)
    if ($P.ContainsKey('ControllerType') -and [string]$Drive.ControllerType -ne [string]$P['ControllerType']) {
        return $false
    }
    if ($P.ContainsKey('ControllerNumber') -and $Drive.ControllerNumber -ne [int]$P['ControllerNumber']) {
        return $false
    }
    if ($P.ContainsKey('ControllerLocation') -and $Drive.ControllerLocation -ne [int]$P['ControllerLocation']) {
        return $false
    }
    return $true
}

function Get-FakeSnapshotDrives {
    # The drives of a checkpoint (Get-VMSnapshot object): its HardDrives / DVDDrives as they were.
    param($Snapshot, [string]$Property)
    return @($Snapshot.$Property | Where-Object { $null -ne $_ })
}

Register-FakeCmdlet -Name 'Get-VMHardDiskDrive' -Body {
    param($Cmdlet, $Set, $P)
    if ($Set -eq 'VMSnapshot') {
        foreach ($drive in Get-FakeSnapshotDrives -Snapshot $P['VMSnapshot'] -Property 'HardDrives') {
            if (Test-FakeDriveFilter -Drive $drive -P $P) {
                $drive
            }
        }
        return
    }
    if ($Set -eq 'VMDriveController') {
        foreach ($controller in @($P['VMDriveController'])) {
            foreach ($drive in @($controller.Drives)) {
                if ($drive -is [Microsoft.HyperV.PowerShell.HardDiskDrive] -and (Test-FakeDriveFilter -Drive $drive -P $P)) {
                    $drive
                }
            }
        }
        return
    }
    foreach ($name in Resolve-FakeVMNames -Cmdlet $Cmdlet -P $P -Command 'GetVMHardDiskDrive') {
        foreach ($drive in Get-FakeHardDiskDriveObjects -VMName $name -Spec (Get-FakeVMSpec -Name $name)) {
            if (Test-FakeDriveFilter -Drive $drive -P $P) {
                $drive
            }
        }
    }
}

Register-FakeCmdlet -Name 'Get-VMDvdDrive' -Body {
    param($Cmdlet, $Set, $P)
    if ($Set -eq 'VMSnapshot') {
        foreach ($drive in Get-FakeSnapshotDrives -Snapshot $P['VMSnapshot'] -Property 'DVDDrives') {
            if (Test-FakeDriveFilter -Drive $drive -P $P) {
                $drive
            }
        }
        return
    }
    if ($Set -eq 'VMDriveController') {
        foreach ($controller in @($P['VMDriveController'])) {
            foreach ($drive in @($controller.Drives)) {
                if ($drive -is [Microsoft.HyperV.PowerShell.DvdDrive] -and (Test-FakeDriveFilter -Drive $drive -P $P)) {
                    $drive
                }
            }
        }
        return
    }
    foreach ($name in Resolve-FakeVMNames -Cmdlet $Cmdlet -P $P -Command 'GetVMDvdDrive') {
        foreach ($drive in Get-FakeDvdDriveObjects -VMName $name -Spec (Get-FakeVMSpec -Name $name)) {
            if (Test-FakeDriveFilter -Drive $drive -P $P) {
                $drive
            }
        }
    }
}

# --------------------------------------------------------------------------------------------
# Controllers
# --------------------------------------------------------------------------------------------

Register-FakeCmdlet -Name 'Get-VMScsiController' -Body {
    param($Cmdlet, $Set, $P)
    if ($Set -eq 'VMSnapshot') {
        return
    }
    foreach ($name in Resolve-FakeVMNames -Cmdlet $Cmdlet -P $P -Command 'GetVMScsiController') {
        $spec = Get-FakeVMSpec -Name $name
        $drives = @(Get-FakeHardDiskDriveObjects -VMName $name -Spec $spec) + @(Get-FakeDvdDriveObjects -VMName $name -Spec $spec)
        for ($number = 0; $number -lt (Get-FakeScsiCount -Spec $spec); $number++) {
            if ($P.ContainsKey('ControllerNumber') -and [int]$P['ControllerNumber'] -ne $number) {
                continue
            }
            New-FakeControllerObject -VMName $name -Spec $spec -Type 'SCSI' -Number $number -Drives $drives
        }
    }
}

Register-FakeCmdlet -Name 'Get-VMIdeController' -Body {
    param($Cmdlet, $Set, $P)
    if ($Set -eq 'VMSnapshot') {
        return
    }
    foreach ($name in Resolve-FakeVMNames -Cmdlet $Cmdlet -P $P -Command 'GetVMIdeController') {
        $spec = Get-FakeVMSpec -Name $name
        # A Generation 2 VM has no IDE controller: nothing to list.
        if ([int](Get-FakeVMSpecValue -Spec $spec -Key 'generation' -Default 2) -ne 1) {
            continue
        }
        $drives = @(Get-FakeHardDiskDriveObjects -VMName $name -Spec $spec) + @(Get-FakeDvdDriveObjects -VMName $name -Spec $spec)
        for ($number = 0; $number -lt 2; $number++) {
            if ($P.ContainsKey('ControllerNumber') -and [int]$P['ControllerNumber'] -ne $number) {
                continue
            }
            New-FakeControllerObject -VMName $name -Spec $spec -Type 'IDE' -Number $number -Drives $drives
        }
    }
}

function Test-FakeVMChangeable {
    # Hyper-V changes devices only while the VM is Off or Running (Saved, Paused: the object is
    # not in a state that allows it, 0x8007139F = ERROR_INVALID_STATE 5023). $OffOnly: only Off.
    param($Cmdlet, [string]$Name, [System.Collections.IDictionary]$Spec, [string]$Command, [string]$Device, [switch]$OffOnly)
    $stateName = Get-FakeVMStateName -Spec $Spec
    $allowed = @('Off', 'Running')
    if ($OffOnly) {
        $allowed = @('Off')
    }
    if ($allowed -contains $stateName) {
        return $true
    }
    $message = 'Failed to modify device ''' + $Device + '''.' + [Environment]::NewLine + '''' + $Name + ''' failed to modify device ''' + $Device + '''. (Virtual machine ID ' + ([string]$Spec['id']).ToUpperInvariant() + ')' + [Environment]::NewLine + 'The operation cannot be performed while the object is in its current state. ' + (Get-FakeHexCode -Code 5023)
    Write-FakeHyperVError -Cmdlet $Cmdlet -Message $message -Reason 'InvalidState' -Command $Command -Category 'InvalidOperation' -Target $Name
    return $false
}

Register-FakeCmdlet -Name 'Add-VMScsiController' -Body {
    param($Cmdlet, $Set, $P)
    foreach ($name in Resolve-FakeVMNames -Cmdlet $Cmdlet -P $P -Command 'AddVMScsiController') {
        $spec = Get-FakeVMSpec -Name $name
        # A SCSI controller can only be added while the VM is off.
        if (-not (Test-FakeVMChangeable -Cmdlet $Cmdlet -Name $name -Spec $spec -Command 'AddVMScsiController' -Device 'Synthetic SCSI Controller' -OffOnly)) {
            continue
        }
        $count = Get-FakeScsiCount -Spec $spec
        if ($count -ge $script:MaxScsiControllers) {
            $message = 'Failed to add device ''Synthetic SCSI Controller''.' + [Environment]::NewLine + 'The virtual machine ''' + $name + ''' already has the maximum number of SCSI controllers (' + [string]$script:MaxScsiControllers + ').'
            Write-FakeHyperVError -Cmdlet $Cmdlet -Message $message -Reason 'OperationFailed' -Command 'AddVMScsiController' -Category 'InvalidOperation' -Target $name
            continue
        }
        $spec['scsi_controllers'] = $count + 1
        Save-FakeState
        if ($P.ContainsKey('Passthru') -and [bool]$P['Passthru']) {
            New-FakeControllerObject -VMName $name -Spec $spec -Type 'SCSI' -Number $count
        }
    }
}

function Remove-FakeScsiControllerAt {
    # Removes SCSI controller $Number with its drives; the controllers after it move down.
    param([System.Collections.IDictionary]$Spec, [int]$Number)
    $kept = @()
    foreach ($disk in @(Get-FakeVMDisks -Spec $Spec)) {
        if ([string]$disk['controller_type'] -eq 'SCSI') {
            if ([int]$disk['controller_number'] -eq $Number) {
                continue
            }
            if ([int]$disk['controller_number'] -gt $Number) {
                $disk['controller_number'] = [int]$disk['controller_number'] - 1
            }
        }
        $kept += $disk
    }
    $Spec['disks'] = $kept
    $Spec['scsi_controllers'] = (Get-FakeScsiCount -Spec $Spec) - 1
}

Register-FakeCmdlet -Name 'Remove-VMScsiController' -Body {
    param($Cmdlet, $Set, $P)
    $targets = Microsoft.PowerShell.Utility\New-Object -TypeName System.Collections.Generic.List[object]
    if ($Set -eq 'Object') {
        foreach ($controller in @($P['VMScsiController'])) {
            $name = Find-FakeVMNameById -Id ([guid]$controller.VMId)
            if ($null -eq $name) {
                Write-FakeHyperVError -Cmdlet $Cmdlet -Message ('The virtual machine ''' + [string]$controller.VMName + ''' no longer exists.') -Reason 'ObjectNotFound' -Command 'RemoveVMScsiController' -Category 'ObjectNotFound' -Target $controller
                continue
            }
            $targets.Add(@{ name = $name; number = [int]$controller.ControllerNumber; object = $controller })
        }
    } else {
        foreach ($name in Resolve-FakeVMNames -Cmdlet $Cmdlet -P $P -Command 'RemoveVMScsiController') {
            $targets.Add(@{ name = $name; number = [int]$P['ControllerNumber']; object = $null })
        }
    }
    # Highest number first: removing one renumbers those after it.
    foreach ($target in @($targets | Sort-Object -Property @{ Expression = { $_.number } } -Descending)) {
        $spec = Get-FakeVMSpec -Name $target.name
        if ($target.number -ge (Get-FakeScsiCount -Spec $spec) -or $target.number -lt 0) {
            Write-FakeHyperVError -Cmdlet $Cmdlet -Message ('Hyper-V was unable to find a SCSI controller with number ' + [string]$target.number + ' on virtual machine ''' + $target.name + '''.') -Reason 'ObjectNotFound' -Command 'RemoveVMScsiController' -Category 'ObjectNotFound' -Target $target.name
            continue
        }
        if (-not (Test-FakeVMChangeable -Cmdlet $Cmdlet -Name $target.name -Spec $spec -Command 'RemoveVMScsiController' -Device 'Synthetic SCSI Controller' -OffOnly)) {
            continue
        }
        $object = New-FakeControllerObject -VMName $target.name -Spec $spec -Type 'SCSI' -Number $target.number
        Remove-FakeScsiControllerAt -Spec $spec -Number $target.number
        Save-FakeState
        if ($P.ContainsKey('Passthru') -and [bool]$P['Passthru']) {
            $object
        }
    }
}

# --------------------------------------------------------------------------------------------
# Add-VMHardDiskDrive
# --------------------------------------------------------------------------------------------

function Get-FakeVMDiskHolders {
    # The VMs (name, slot) whose drives hold the file at $Path open: a hard disk with that path,
    # or a differencing disk whose parent chain ends at it; also the passthrough disk $DiskNumber.
    param([string]$Path, $DiskNumber)
    $holders = @()
    $table = Get-FakeVMTable
    $identity = $null
    if (-not [string]::IsNullOrEmpty($Path)) {
        $identity = Get-FakeFileIdentity -Path $Path
    }
    foreach ($name in Get-FakeVMNames) {
        foreach ($disk in @(Get-FakeVMDisks -Spec $table[$name])) {
            if ($null -ne $DiskNumber) {
                if ($disk.ContainsKey('disk_number') -and $null -ne $disk['disk_number'] -and [int]$disk['disk_number'] -eq [int]$DiskNumber) {
                    $holders += $name
                }
                continue
            }
            foreach ($held in @($disk['path'], $disk['image'])) {
                if (-not [string]::IsNullOrEmpty([string]$held) -and (Get-FakeFileIdentity -Path ([string]$held)) -eq $identity) {
                    $holders += $name
                }
            }
        }
    }
    return $holders
}

function Get-FakeFreeLocation {
    param([System.Collections.IDictionary]$Spec, [string]$Type, [int]$Number)
    $limit = $script:ScsiLocations
    if ($Type -eq 'IDE') {
        $limit = $script:IdeLocations
    }
    for ($location = 0; $location -lt $limit; $location++) {
        if (-not (Test-FakeSlotTaken -Spec $Spec -Type $Type -Number $Number -Location $location)) {
            return $location
        }
    }
    return $null
}

function Get-FakeControllerCount {
    param([System.Collections.IDictionary]$Spec, [string]$Type)
    if ($Type -eq 'IDE') {
        if ([int](Get-FakeVMSpecValue -Spec $Spec -Key 'generation' -Default 2) -eq 1) {
            return 2
        }
        return 0
    }
    return Get-FakeScsiCount -Spec $Spec
}

function Resolve-FakeNewDriveSlot {
    # The slot Add-VMHardDiskDrive uses: the one given, else the first free location (of the
    # given controller, else of the first controller with one). $null after writing the error.
    param($Cmdlet, [string]$Name, [System.Collections.IDictionary]$Spec, [string]$Type, $Number, $Location)
    $command = 'AddVMHardDiskDrive'
    $count = Get-FakeControllerCount -Spec $Spec -Type $Type
    if ($count -eq 0 -or ($null -ne $Number -and ([int]$Number -ge $count -or [int]$Number -lt 0))) {
        $what = 'an ' + $Type + ' controller'
        if ($Type -eq 'SCSI') {
            $what = 'a SCSI controller'
        }
        if ($null -ne $Number) {
            $what += ' with number ' + [string]$Number
        }
        Write-FakeHyperVError -Cmdlet $Cmdlet -Message ('Hyper-V was unable to find ' + $what + ' on virtual machine ''' + $Name + '''.') -Reason 'ObjectNotFound' -Command $command -Category 'ObjectNotFound' -Target $Name
        return $null
    }
    $numbers = @(0..($count - 1))
    if ($null -ne $Number) {
        $numbers = @([int]$Number)
    }
    foreach ($n in $numbers) {
        if ($null -ne $Location) {
            if (Test-FakeSlotTaken -Spec $Spec -Type $Type -Number $n -Location ([int]$Location)) {
                $message = 'Failed to add device ''Synthetic Disk Drive''.' + [Environment]::NewLine + 'The ' + $Type + ' controller ' + [string]$n + ' location ' + [string]$Location + ' of virtual machine ''' + $Name + ''' is already in use. ' + (Get-FakeHexCode -Code 5023)
                Write-FakeHyperVError -Cmdlet $Cmdlet -Message $message -Reason 'InvalidParameter' -Command $command -Category 'InvalidArgument' -Target $Name
                return $null
            }
            return @{ type = $Type; number = $n; location = [int]$Location }
        }
        $free = Get-FakeFreeLocation -Spec $Spec -Type $Type -Number $n
        if ($null -ne $free) {
            return @{ type = $Type; number = $n; location = $free }
        }
    }
    $message = 'Failed to add device ''Synthetic Disk Drive''.' + [Environment]::NewLine + 'No free location on the ' + $Type + ' controller(s) of virtual machine ''' + $Name + '''.'
    Write-FakeHyperVError -Cmdlet $Cmdlet -Message $message -Reason 'OperationFailed' -Command $command -Category 'InvalidOperation' -Target $Name
    return $null
}

function New-FakeAttachFailureMessage {
    # Hyper-V's WMI job text for a failed attachment: the device, the VM, the file, the cause
    # with its HRESULT.
    param([string]$Name, [System.Collections.IDictionary]$Spec, [string]$Path, [string]$Cause, [int]$Code)
    $id = ([string]$Spec['id']).ToUpperInvariant()
    $nl = [Environment]::NewLine
    return 'Failed to add device ''Virtual Hard Disk''.' + $nl + '''' + $Name + ''' failed to add device ''Virtual Hard Disk''. (Virtual machine ID ' + $id + ')' + $nl + '''' + $Name + ''': Failed to open attachment ''' + $Path + '''. Error: ''' + $Cause + ''' ' + (Get-FakeHexCode -Code $Code) + '. (Virtual machine ID ' + $id + ')'
}

function Test-FakeAttachablePath {
    # Whether Hyper-V (VMMS, the host's computer account) can open $Path for $Name: the file
    # model's answer, the extension, and no other drive holding the file.
    param($Cmdlet, [string]$Name, [System.Collections.IDictionary]$Spec, [string]$Path)
    $command = 'AddVMHardDiskDrive'
    $access = Get-FakeFileAccess -Path $Path -AsHost
    $failure = $null
    switch ([string]$access.status) {
        'ok' {
            if (-not $access.exists) {
                $failure = @{ cause = 'The system cannot find the file specified.'; code = 2; reason = 'ObjectNotFound'; category = 'ObjectNotFound' }
            }
        }
        'denied' {
            $failure = @{ cause = 'General access denied error'; code = 5; reason = 'AccessDenied'; category = 'PermissionDenied' }
        }
        'unreachable' {
            $failure = @{ cause = [string]$access.message; code = [int]$access.code; reason = 'OperationFailed'; category = 'NotSpecified' }
        }
        default {
            $failure = @{ cause = 'The system cannot find the path specified.'; code = 3; reason = 'ObjectNotFound'; category = 'ObjectNotFound' }
        }
    }
    if ($null -eq $failure) {
        $extension = [System.IO.Path]::GetExtension($Path.Replace('\', '/')).ToLowerInvariant()
        if (@('.vhd', '.vhdx', '.avhd', '.avhdx', '.vhds') -notcontains $extension) {
            $failure = @{ cause = 'The file or directory is not a virtual hard disk.'; code = 13; reason = 'InvalidParameter'; category = 'InvalidArgument' }
        }
    }
    if ($null -eq $failure -and @(Get-FakeVMDiskHolders -Path $Path -DiskNumber $null).Count -gt 0) {
        $failure = @{ cause = 'The process cannot access the file because it is being used by another process.'; code = 32; reason = 'ObjectInUse'; category = 'ResourceBusy' }
    }
    if ($null -eq $failure) {
        return $true
    }
    $message = New-FakeAttachFailureMessage -Name $Name -Spec $Spec -Path $Path -Cause $failure.cause -Code $failure.code
    Write-FakeHyperVError -Cmdlet $Cmdlet -Message $message -Reason $failure.reason -Command $command -Category $failure.category -Target $Path
    return $false
}

function Get-FakeAddTargets {
    # (VM name, controller type, controller number) of each Add-VMHardDiskDrive target.
    param($Cmdlet, $Set, [System.Collections.IDictionary]$P)
    $targets = @()
    if ($Set -eq 'VMDriveController') {
        foreach ($controller in @($P['VMDriveController'])) {
            $name = Find-FakeVMNameById -Id ([guid]$controller.VMId)
            if ($null -eq $name) {
                continue
            }
            $type = 'SCSI'
            if ($controller -is [Microsoft.HyperV.PowerShell.VMIdeController]) {
                $type = 'IDE'
            }
            $targets += , @{ name = $name; type = $type; number = [int]$controller.ControllerNumber }
        }
        return $targets
    }
    foreach ($name in Resolve-FakeVMNames -Cmdlet $Cmdlet -P $P -Command 'AddVMHardDiskDrive') {
        $spec = Get-FakeVMSpec -Name $name
        $type = $null
        if ($P.ContainsKey('ControllerType')) {
            $type = [string]$P['ControllerType']
        } elseif ([int](Get-FakeVMSpecValue -Spec $spec -Key 'generation' -Default 2) -eq 1) {
            $type = 'IDE'
        } else {
            $type = 'SCSI'
        }
        $number = $null
        if ($P.ContainsKey('ControllerNumber')) {
            $number = [int]$P['ControllerNumber']
        }
        $targets += , @{ name = $name; type = $type; number = $number }
    }
    return $targets
}

Register-FakeCmdlet -Name 'Add-VMHardDiskDrive' -Body {
    param($Cmdlet, $Set, $P)
    $command = 'AddVMHardDiskDrive'
    foreach ($target in @(Get-FakeAddTargets -Cmdlet $Cmdlet -Set $Set -P $P)) {
        $name = $target.name
        $spec = Get-FakeVMSpec -Name $name
        if (-not (Test-FakeVMChangeable -Cmdlet $Cmdlet -Name $name -Spec $spec -Command $command -Device 'Synthetic Disk Drive')) {
            continue
        }
        if ($target.type -eq 'PMEM') {
            Write-FakeHyperVError -Cmdlet $Cmdlet -Message ('Virtual machine ''' + $name + ''' has no persistent memory controller.') -Reason 'ObjectNotFound' -Command $command -Category 'ObjectNotFound' -Target $name
            continue
        }
        # IDE drives are added only while the VM is off (only SCSI is hot-pluggable).
        if ($target.type -eq 'IDE' -and (Get-FakeVMStateName -Spec $spec) -ne 'Off') {
            if (-not (Test-FakeVMChangeable -Cmdlet $Cmdlet -Name $name -Spec $spec -Command $command -Device 'Synthetic Disk Drive' -OffOnly)) {
                continue
            }
        }
        $location = $null
        if ($P.ContainsKey('ControllerLocation')) {
            $location = [int]$P['ControllerLocation']
        }
        $slot = Resolve-FakeNewDriveSlot -Cmdlet $Cmdlet -Name $name -Spec $spec -Type $target.type -Number $target.number -Location $location
        if ($null -eq $slot) {
            continue
        }
        $diskNumber = $null
        $path = $null
        if ($P.ContainsKey('DiskNumber')) {
            $diskNumber = [int]$P['DiskNumber']
            if (@(Get-FakeVMDiskHolders -Path $null -DiskNumber $diskNumber).Count -gt 0) {
                $message = New-FakeAttachFailureMessage -Name $name -Spec $spec -Path ('Disk ' + [string]$diskNumber) -Cause 'The process cannot access the file because it is being used by another process.' -Code 32
                Write-FakeHyperVError -Cmdlet $Cmdlet -Message $message -Reason 'ObjectInUse' -Command $command -Category 'ResourceBusy' -Target $diskNumber
                continue
            }
        } elseif ($P.ContainsKey('Path') -and -not [string]::IsNullOrEmpty([string]$P['Path'])) {
            $path = [string]$P['Path']
            if (-not (Test-FakeAttachablePath -Cmdlet $Cmdlet -Name $name -Spec $spec -Path $path)) {
                continue
            }
        } else {
            Write-FakeHyperVError -Cmdlet $Cmdlet -Message 'The fake host does not model empty hard disk drives: give -Path or -DiskNumber.' -Reason 'InvalidParameter' -Command $command -Category 'InvalidArgument'
            continue
        }
        $disk = @{
            controller_type = $slot.type
            controller_number = $slot.number
            controller_location = $slot.location
            path = $path
            maximum_iops = 0
            minimum_iops = 0
            disk_number = $diskNumber
            image = $null
        }
        if ($P.ContainsKey('MaximumIOPS')) {
            $disk['maximum_iops'] = [long]$P['MaximumIOPS']
        }
        if ($P.ContainsKey('MinimumIOPS')) {
            $disk['minimum_iops'] = [long]$P['MinimumIOPS']
        }
        $spec['disks'] = @(Get-FakeVMDisks -Spec $spec) + @($disk)
        Set-FakeDiskOrder -Spec $spec
        Save-FakeState
        if ($P.ContainsKey('Passthru') -and [bool]$P['Passthru']) {
            New-FakeHardDiskDriveObject -VMName $name -Spec $spec -Disk $disk
        }
    }
}

# --------------------------------------------------------------------------------------------
# Remove-VMHardDiskDrive, Set-VMHardDiskDrive
# --------------------------------------------------------------------------------------------

function Find-FakeDiskSpec {
    # The state entry of a hard disk drive: VM by id, disk by slot. $null when there is none.
    param([string]$VMName, [string]$Type, [int]$Number, [int]$Location)
    $spec = Get-FakeVMSpec -Name $VMName
    foreach ($disk in @(Get-FakeVMDisks -Spec $spec)) {
        if ([string]$disk['controller_type'] -eq $Type -and [int]$disk['controller_number'] -eq $Number -and [int]$disk['controller_location'] -eq $Location) {
            return $disk
        }
    }
    return $null
}

function Get-FakeDriveTargets {
    # (VM name, type, number, location) of the drives a Remove/Set call names: drive objects
    # (-VMHardDiskDrive) or -VMName with the controller slot.
    param($Cmdlet, $Set, [System.Collections.IDictionary]$P, [string]$Command)
    $targets = @()
    if ($P.ContainsKey('VMHardDiskDrive')) {
        foreach ($drive in @($P['VMHardDiskDrive'])) {
            $name = Find-FakeVMNameById -Id ([guid]$drive.VMId)
            $targets += , @{ name = $name; type = [string]$drive.ControllerType; number = [int]$drive.ControllerNumber; location = [int]$drive.ControllerLocation; vm_label = [string]$drive.VMName }
        }
        return $targets
    }
    foreach ($name in Resolve-FakeVMNames -Cmdlet $Cmdlet -P @{ VMName = $P['VMName'] } -Command $Command) {
        $type = 'SCSI'
        if ($P.ContainsKey('ControllerType')) {
            $type = [string]$P['ControllerType']
        }
        $targets += , @{ name = $name; type = $type; number = [int]$P['ControllerNumber']; location = [int]$P['ControllerLocation']; vm_label = $name }
    }
    return $targets
}

function Write-FakeDriveNotFound {
    param($Cmdlet, [hashtable]$Target, [string]$Command)
    Write-FakeHyperVError -Cmdlet $Cmdlet -Message ('Hyper-V was unable to find a hard disk drive on ' + $Target.type + ' controller ' + [string]$Target.number + ' at location ' + [string]$Target.location + ' of virtual machine ''' + $Target.vm_label + '''.') -Reason 'ObjectNotFound' -Command $Command -Category 'ObjectNotFound' -Target $Target.vm_label
}

Register-FakeCmdlet -Name 'Remove-VMHardDiskDrive' -Body {
    param($Cmdlet, $Set, $P)
    $command = 'RemoveVMHardDiskDrive'
    foreach ($target in @(Get-FakeDriveTargets -Cmdlet $Cmdlet -Set $Set -P $P -Command $command)) {
        $disk = $null
        if ($null -ne $target.name) {
            $disk = Find-FakeDiskSpec -VMName $target.name -Type $target.type -Number $target.number -Location $target.location
        }
        if ($null -eq $disk) {
            Write-FakeDriveNotFound -Cmdlet $Cmdlet -Target $target -Command $command
            continue
        }
        $spec = Get-FakeVMSpec -Name $target.name
        if (-not (Test-FakeVMChangeable -Cmdlet $Cmdlet -Name $target.name -Spec $spec -Command $command -Device 'Synthetic Disk Drive')) {
            continue
        }
        # Only SCSI drives are hot-removable: an IDE drive leaves only while the VM is off.
        if ($target.type -eq 'IDE' -and -not (Test-FakeVMChangeable -Cmdlet $Cmdlet -Name $target.name -Spec $spec -Command $command -Device 'Synthetic Disk Drive' -OffOnly)) {
            continue
        }
        $object = New-FakeHardDiskDriveObject -VMName $target.name -Spec $spec -Disk $disk
        $spec['disks'] = @(Get-FakeVMDisks -Spec $spec | Where-Object { -not [object]::ReferenceEquals($_, $disk) })
        Save-FakeState
        if ($P.ContainsKey('Passthru') -and [bool]$P['Passthru']) {
            $object
        }
    }
}

Register-FakeCmdlet -Name 'Set-VMHardDiskDrive' -Body {
    param($Cmdlet, $Set, $P)
    $command = 'SetVMHardDiskDrive'
    foreach ($target in @(Get-FakeDriveTargets -Cmdlet $Cmdlet -Set $Set -P $P -Command $command)) {
        $disk = $null
        if ($null -ne $target.name) {
            $disk = Find-FakeDiskSpec -VMName $target.name -Type $target.type -Number $target.number -Location $target.location
        }
        if ($null -eq $disk) {
            Write-FakeDriveNotFound -Cmdlet $Cmdlet -Target $target -Command $command
            continue
        }
        $spec = Get-FakeVMSpec -Name $target.name
        if (-not (Test-FakeVMChangeable -Cmdlet $Cmdlet -Name $target.name -Spec $spec -Command $command -Device 'Synthetic Disk Drive')) {
            continue
        }
        $maximum = [long](Get-FakeVMSpecValue -Spec $disk -Key 'maximum_iops' -Default 0)
        $minimum = [long](Get-FakeVMSpecValue -Spec $disk -Key 'minimum_iops' -Default 0)
        if ($P.ContainsKey('MaximumIOPS')) {
            $maximum = [long]$P['MaximumIOPS']
        }
        if ($P.ContainsKey('MinimumIOPS')) {
            $minimum = [long]$P['MinimumIOPS']
        }
        if ($maximum -gt 0 -and $minimum -gt $maximum) {
            Write-FakeHyperVError -Cmdlet $Cmdlet -Message ('The minimum IOPS (' + [string]$minimum + ') of the hard disk drive must not exceed its maximum IOPS (' + [string]$maximum + ').') -Reason 'InvalidParameter' -Command $command -Category 'InvalidArgument' -Target $target.vm_label
            continue
        }
        $disk['maximum_iops'] = $maximum
        $disk['minimum_iops'] = $minimum
        Save-FakeState
        if ($P.ContainsKey('Passthru') -and [bool]$P['Passthru']) {
            New-FakeHardDiskDriveObject -VMName $target.name -Spec $spec -Disk $disk
        }
    }
}

# --------------------------------------------------------------------------------------------
# Get-VHD
# --------------------------------------------------------------------------------------------

function Find-FakeAttachedDisk {
    # The state entry of a VM disk whose path is $Path (case-insensitive), or $null.
    param([string]$Path)
    $table = Get-FakeVMTable
    foreach ($name in Get-FakeVMNames) {
        foreach ($disk in @(Get-FakeVMDisks -Spec $table[$name])) {
            if ([string]::Equals([string]$disk['path'], $Path, [System.StringComparison]::OrdinalIgnoreCase)) {
                return $disk
            }
        }
    }
    return $null
}

function Get-FakeVhdFormat {
    param([string]$Path)
    $lower = $Path.ToLowerInvariant()
    if ($lower.EndsWith('.vhdx') -or $lower.EndsWith('.avhdx')) {
        return [Microsoft.Vhd.PowerShell.VhdFormat]::VHDX
    }
    if ($lower.EndsWith('.vhds')) {
        return [Microsoft.Vhd.PowerShell.VhdFormat]::VHDSet
    }
    return [Microsoft.Vhd.PowerShell.VhdFormat]::VHD
}

function New-FakeVhdObject {
    param([string]$Path, $ParentPath, [bool]$Attached)
    $type = [Microsoft.Vhd.PowerShell.VhdType]::Dynamic
    if ($null -ne $ParentPath) {
        $type = [Microsoft.Vhd.PowerShell.VhdType]::Differencing
    }
    $vhd = New-FakeHyperVObject -TypeName 'Microsoft.Vhd.PowerShell.VirtualHardDisk' -Property @{
        ComputerName = Get-FakeComputerName
        Path = $Path
        VhdFormat = Get-FakeVhdFormat -Path $Path
        VhdType = $type
        Attached = $Attached
        Size = [uint64]10737418240
        FileSize = [uint64]4194304
        LogicalSectorSize = [uint32]512
        PhysicalSectorSize = [uint32]4096
        BlockSize = [uint32]33554432
    }
    $vhd.ParentPath = $ParentPath
    return $vhd
}

function Write-FakeVhdMissing {
    param($Cmdlet, [string]$Path)
    Write-FakeHyperVError -Cmdlet $Cmdlet -Message ('''' + $Path + ''' is not an existing virtual hard disk file.') -Reason 'ObjectNotFound' -Command 'GetVHD' -Category 'ObjectNotFound' -Target $Path
}

Register-FakeCmdlet -Name 'Get-VHD' -Body {
    param($Cmdlet, $Set, $P)
    $paths = @()
    if ($Set -eq 'VMId') {
        foreach ($id in @($P['VMId'])) {
            $name = Find-FakeVMNameById -Id ([guid]$id)
            if ($null -eq $name) {
                Write-FakeHyperVError -Cmdlet $Cmdlet -Message ('Hyper-V was unable to find a virtual machine with id "' + [string]$id + '".') -Reason 'InvalidParameter' -Command 'GetVHD' -Category 'InvalidArgument' -Target $id
                continue
            }
            $paths += @(Get-FakeVMDisks -Spec (Get-FakeVMSpec -Name $name) | Where-Object { -not [string]::IsNullOrEmpty([string]$_['path']) } | ForEach-Object { [string]$_['path'] })
        }
    } elseif ($Set -eq 'Disk') {
        Write-FakeHyperVError -Cmdlet $Cmdlet -Message ('The disk ' + [string]$P['DiskNumber'] + ' is not a mounted virtual hard disk.') -Reason 'ObjectNotFound' -Command 'GetVHD' -Category 'ObjectNotFound' -Target $P['DiskNumber']
        return
    } else {
        $paths = @($P['Path'])
    }
    foreach ($path in $paths) {
        $text = [string]$path
        $disk = Find-FakeAttachedDisk -Path $text
        if ($null -ne $disk -and (Test-FakeCheckpointPath -Path $text)) {
            # A checkpoint's differencing disk; image null: its file cannot be read.
            if ([string]::IsNullOrEmpty([string]$disk['image'])) {
                Write-FakeVhdMissing -Cmdlet $Cmdlet -Path $text
                continue
            }
            New-FakeVhdObject -Path $text -ParentPath ([string]$disk['image']) -Attached $true
            continue
        }
        $access = Get-FakeFileAccess -Path $text -AsHost
        if ([string]$access.status -eq 'ok' -and $access.exists) {
            New-FakeVhdObject -Path $text -ParentPath $null -Attached ($null -ne $disk)
            continue
        }
        if ($null -ne $disk -and [string]$access.status -eq 'outside') {
            # A disk attached from outside the file model (a filler disk): it exists.
            New-FakeVhdObject -Path $text -ParentPath $null -Attached $true
            continue
        }
        if ([string]$access.status -eq 'denied') {
            Write-FakeHyperVError -Cmdlet $Cmdlet -Message ('Failed to get the disk information of ''' + $text + '''.' + [Environment]::NewLine + 'Access is denied. ' + (Get-FakeHexCode -Code 5)) -Reason 'AccessDenied' -Command 'GetVHD' -Category 'PermissionDenied' -Target $text
            continue
        }
        Write-FakeVhdMissing -Cmdlet $Cmdlet -Path $text
    }
}

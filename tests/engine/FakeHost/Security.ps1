# Windows security on the fake host: the security objects of System.Security.Principal and
# System.Security.AccessControl (New-Object hands out FakeHost.Security's classes of the same
# names for them: their constructors throw PlatformNotSupportedException on Linux), file
# owners and DACLs (Get-Acl, Set-Acl), DPAPI in machine scope, %ProgramData%, and COM classes
# (New-Object -ComObject: the Task Scheduler of Tasks.ps1). Dot-sourced by FakeHost.psm1.
#
# The host's C: drive lives in the folder "<state file>.fs" of this machine, one entry per
# Windows path (a backslash is an ordinary character in a Linux file name): "C:\ProgramData",
# "C:\ProgramData\smbvol", ... so .NET's file APIs (Directory.Exists, File.Move, FileStream)
# work on those paths as they do on Windows.
# state.directories = [Windows path] (folders the drive has before the run); state.junctions =
# {Windows path: target Windows path} (links, reparse points to .NET as on Windows);
# state.acls = {Windows path: {owner: SID, protected: bool, rules: [{sid, rights, inheritance,
# propagation, type}]}} (a path not listed is owned by BUILTIN\Administrators, as what an
# elevated administrator creates is); state.accounts = {SID: 'DOMAIN\name'} (local users).

$script:FakeWindowsTypes = @{
    'System.Security.Principal.SecurityIdentifier' = 'FakeHost.Security.SecurityIdentifier'
    'System.Security.Principal.NTAccount' = 'FakeHost.Security.NTAccount'
    'System.Security.AccessControl.DirectorySecurity' = 'FakeHost.Security.DirectorySecurity'
    'System.Security.AccessControl.FileSecurity' = 'FakeHost.Security.FileSecurity'
    'System.Security.AccessControl.FileSystemAccessRule' = 'FakeHost.Security.FileSystemAccessRule'
}
$script:FakeDefaultOwner = 'S-1-5-32-544'
$script:FakeLogon = 'caller'

function Set-FakeLogonSession {
    # 'caller' (the script's own logon: state.host.remote_session says whether it is a network
    # logon) or 'service' (a service account's: the scheduled task's SYSTEM).
    param([ValidateSet('caller', 'service')][string]$Kind)
    $script:FakeLogon = $Kind
}

function Get-FakeLogonSession {
    return $script:FakeLogon
}

function Get-FakeDriveRoot {
    # The folder of this machine that holds the fake host's drive entries.
    $state = [string]$env:SMBVOL_FAKEHOST_STATE
    if ($state -eq '') {
        $state = Join-Path ([System.IO.Path]::GetTempPath()) ('fakehost-' + [string]$env:SMBVOL_FAKEHOST_ID)
    }
    $root = $state + '.fs'
    if (-not [System.IO.Directory]::Exists($root)) {
        $null = [System.IO.Directory]::CreateDirectory($root)
        $fake = Get-FakeState
        if ($fake.ContainsKey('directories')) {
            foreach ($folder in @($fake['directories'])) {
                $null = [System.IO.Directory]::CreateDirectory($root + '/' + [string]$folder)
            }
        }
        if ($fake.ContainsKey('junctions') -and $null -ne $fake['junctions']) {
            foreach ($link in @($fake['junctions'].Keys)) {
                $target = $root + '/' + [string]$fake['junctions'][$link]
                $null = [System.IO.Directory]::CreateDirectory($target)
                $null = [System.IO.Directory]::CreateSymbolicLink($root + '/' + [string]$link, $target)
            }
        }
        if ($fake.ContainsKey('accounts') -and $null -ne $fake['accounts']) {
            foreach ($sid in @($fake['accounts'].Keys)) {
                [FakeHost.Security.IdentityReference]::AddAccount([string]$sid, [string]$fake['accounts'][$sid])
            }
        }
    }
    return $root
}

function Get-FakeDriveKey {
    # The Windows path of a drive entry (state.acls is keyed by it), or $null off the drive.
    param([string]$Path)
    $root = (Get-FakeDriveRoot) + '/'
    if (-not $Path.StartsWith($root)) {
        return $null
    }
    return $Path.Substring($root.Length)
}

function Get-FakeProgramDataPath {
    # Stands in for Get-SmbvolProgramDataPath (GetFolderPath('CommonApplicationData') is
    # /usr/share on Linux): C:\ProgramData of the fake host's drive.
    return (Get-FakeDriveRoot) + '/C:\ProgramData'
}

function Get-FakeAcls {
    return Get-FakeStateTable -Name 'acls'
}


Register-FakeCmdlet -Core -Name 'Get-Acl' -Body {
    param($Cmdlet, $Set, $P)
    $path = [string](Get-FakePathArgument -P $P)
    $key = Get-FakeDriveKey -Path $path
    $isDirectory = [System.IO.Directory]::Exists($path)
    if ($null -eq $key -or (-not $isDirectory -and -not [System.IO.File]::Exists($path))) {
        Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakePathNotFound -Path $path -Command 'GetAclCommand')
        return
    }
    if ($isDirectory) {
        $security = Microsoft.PowerShell.Utility\New-Object -TypeName FakeHost.Security.DirectorySecurity
    } else {
        $security = Microsoft.PowerShell.Utility\New-Object -TypeName FakeHost.Security.FileSecurity
    }
    $entry = (Get-FakeAcls)[$key]
    if ($null -eq $entry) {
        $security.Load($script:FakeDefaultOwner, $false)
    } else {
        $security.Load([string]$entry['owner'], [bool]$entry['protected'])
        foreach ($rule in @($entry['rules'])) {
            if ($null -ne $rule) {
                $identity = Microsoft.PowerShell.Utility\New-Object -TypeName FakeHost.Security.SecurityIdentifier -ArgumentList ([string]$rule['sid'])
                $security.AddAccessRule((Microsoft.PowerShell.Utility\New-Object -TypeName FakeHost.Security.FileSystemAccessRule -ArgumentList $identity, ([string]$rule['rights']), ([string]$rule['inheritance']), ([string]$rule['propagation']), ([string]$rule['type'])))
            }
        }
    }
    return $security
}

Register-FakeCmdlet -Core -Name 'Set-Acl' -Body {
    param($Cmdlet, $Set, $P)
    $path = [string](Get-FakePathArgument -P $P)
    $acl = $P['AclObject']
    $key = Get-FakeDriveKey -Path $path
    if ($null -eq $key -or (-not [System.IO.Directory]::Exists($path) -and -not [System.IO.File]::Exists($path))) {
        Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakePathNotFound -Path $path -Command 'SetAclCommand')
        return
    }
    if ($acl -isnot [FakeHost.Security.FileSystemSecurity]) {
        $record = New-FakeErrorRecord -Exception (Microsoft.PowerShell.Utility\New-Object -TypeName System.ArgumentException -ArgumentList 'The input object cannot be bound to any parameters for the command either because the command does not take pipeline input or the input and its properties do not match any of the parameters that take pipeline input.') -ErrorId 'SetAcl_OperationNotSupported,Microsoft.PowerShell.Commands.SetAclCommand' -Category 'InvalidArgument' -Target $acl
        Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord $record
        return
    }
    $acls = Get-FakeAcls
    $owner = $script:FakeDefaultOwner
    if ($null -ne $acls[$key]) {
        $owner = [string]$acls[$key]['owner']
    }
    if ($null -ne $acl.OwnerSid) {
        # Without SeRestorePrivilege an owner can only be set to the caller or a group of its
        # token that may own objects (an elevated administrator: Administrators).
        if (@('S-1-5-32-544', 'S-1-5-18') -notcontains $acl.OwnerSid.Value) {
            $exception = Microsoft.PowerShell.Utility\New-Object -TypeName System.InvalidOperationException -ArgumentList 'The security identifier is not allowed to be the owner of this object.'
            Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakeErrorRecord -Exception $exception -ErrorId 'System.InvalidOperationException,Microsoft.PowerShell.Commands.SetAclCommand' -Category 'InvalidOperation' -Target $path)
            return
        }
        $owner = $acl.OwnerSid.Value
    }
    $rules = @(foreach ($rule in $acl.Rules) {
            @{ sid = $rule.IdentityReference.Translate([FakeHost.Security.SecurityIdentifier]).Value; rights = [string]$rule.FileSystemRights; inheritance = [string]$rule.InheritanceFlags; propagation = [string]$rule.PropagationFlags; type = [string]$rule.AccessControlType }
        })
    $acls[$key] = @{ owner = $owner; protected = [bool]$acl.AreAccessRulesProtected; rules = $rules }
    Save-FakeState
}

Register-FakeCmdlet -Core -Name 'New-Object' -Body {
    param($Cmdlet, $Set, $P)
    if ($Set -eq 'Com') {
        return (New-FakeComObject -Cmdlet $Cmdlet -ProgId ([string]$P['ComObject']))
    }
    $type = [string]$P['TypeName'] -as [type]
    if ($null -eq $type -or -not $script:FakeWindowsTypes.ContainsKey($type.FullName)) {
        return $FakeForward
    }
    $arguments = @{ TypeName = $script:FakeWindowsTypes[$type.FullName] }
    foreach ($name in @('ArgumentList', 'Property')) {
        if ($P.ContainsKey($name)) {
            $arguments[$name] = $P[$name]
        }
    }
    return (Microsoft.PowerShell.Utility\New-Object @arguments)
}

function New-FakeComObject {
    # The COM classes this host has: the Task Scheduler (Tasks.ps1). Any other ProgID fails as
    # New-Object does for a class that is not registered.
    param($Cmdlet, [string]$ProgId)
    if ($ProgId -eq 'Schedule.Service') {
        return (New-FakeTaskService)
    }
    $exception = Microsoft.PowerShell.Utility\New-Object -TypeName System.Runtime.InteropServices.COMException -ArgumentList ('Retrieving the COM class factory for component with CLSID {00000000-0000-0000-0000-000000000000} failed due to the following error: 80040154 Class not registered (0x80040154 (REGDB_E_CLASSNOTREG)).'), -2147221164
    Stop-FakeCmdlet -Cmdlet $Cmdlet -ErrorRecord (New-FakeErrorRecord -Exception $exception -ErrorId 'NoCOMClassIdentified,Microsoft.PowerShell.Commands.NewObjectCommand' -Category 'ResourceUnavailable' -Target $ProgId)
}

function Close-FakeComObject {
    # Stands in for Close-SmbvolComObject (Marshal.ReleaseComObject, which throws on Linux):
    # only COM objects can be released.
    param($InputObject)
    if ($InputObject -isnot [FakeHost.TaskScheduler.TaskService]) {
        throw (Microsoft.PowerShell.Utility\New-Object -TypeName System.ArgumentException -ArgumentList 'The object''s type must be __ComObject or derived from __ComObject.', 'o')
    }
}

# --------------------------------------------------------------------------------------------
# DPAPI, machine scope: a blob only this host opens, and only with the same entropy
# --------------------------------------------------------------------------------------------

function Get-FakeMachineKey {
    $hostInfo = Get-FakeHost
    $sha = [System.Security.Cryptography.SHA256]::Create()
    try {
        return $sha.ComputeHash([System.Text.Encoding]::UTF8.GetBytes('fakehost-dpapi:' + [string]$env:SMBVOL_FAKEHOST_ID + ':' + [string]$hostInfo['name']))
    } finally {
        $sha.Dispose()
    }
}

function Get-FakeDpapiStream {
    param([byte[]]$Key, [byte[]]$Entropy, [int]$Length)
    $out = Microsoft.PowerShell.Utility\New-Object -TypeName 'byte[]' -ArgumentList $Length
    $hmac = Microsoft.PowerShell.Utility\New-Object -TypeName System.Security.Cryptography.HMACSHA256 -ArgumentList (, $Key)
    try {
        $block = 0
        for ($i = 0; $i -lt $Length; $i += 32) {
            $seed = [byte[]]@($Entropy) + [System.BitConverter]::GetBytes($block)
            $chunk = $hmac.ComputeHash($seed)
            [System.Array]::Copy($chunk, 0, $out, $i, [System.Math]::Min(32, $Length - $i))
            $block++
        }
    } finally {
        $hmac.Dispose()
    }
    return , $out
}

function Get-FakeDpapiTag {
    param([byte[]]$Key, [byte[]]$Entropy, [byte[]]$Cipher)
    $hmac = Microsoft.PowerShell.Utility\New-Object -TypeName System.Security.Cryptography.HMACSHA256 -ArgumentList (, $Key)
    try {
        return , $hmac.ComputeHash([byte[]](@([byte]1) + @($Entropy) + @([byte]0) + @($Cipher)))
    } finally {
        $hmac.Dispose()
    }
}

function Protect-FakeLocalMachineData {
    # Stands in for Protect-SmbvolLocalMachineData (ProtectedData throws on Linux).
    param([byte[]]$Bytes, [byte[]]$Entropy)
    if ($null -eq $Entropy) {
        $Entropy = [byte[]]@()
    }
    $key = Get-FakeMachineKey
    $stream = Get-FakeDpapiStream -Key $key -Entropy $Entropy -Length $Bytes.Length
    $cipher = Microsoft.PowerShell.Utility\New-Object -TypeName 'byte[]' -ArgumentList $Bytes.Length
    for ($i = 0; $i -lt $Bytes.Length; $i++) {
        $cipher[$i] = $Bytes[$i] -bxor $stream[$i]
    }
    $tag = Get-FakeDpapiTag -Key $key -Entropy $Entropy -Cipher $cipher
    return , ([byte[]]([System.Text.Encoding]::ASCII.GetBytes('FAKEDPAPI') + $tag + $cipher))
}

function Unprotect-FakeLocalMachineData {
    # Stands in for Unprotect-SmbvolLocalMachineData: another host's blob, other entropy or a
    # changed byte fail as CryptUnprotectData does (ERROR_INVALID_DATA).
    param([byte[]]$Bytes, [byte[]]$Entropy)
    if ($null -eq $Entropy) {
        $Entropy = [byte[]]@()
    }
    $key = Get-FakeMachineKey
    $invalid = Microsoft.PowerShell.Utility\New-Object -TypeName System.Security.Cryptography.CryptographicException -ArgumentList 'The data is invalid.'
    if ($null -eq $Bytes -or $Bytes.Length -lt 41 -or [System.Text.Encoding]::ASCII.GetString($Bytes, 0, 9) -ne 'FAKEDPAPI') {
        throw $invalid
    }
    $tag = [byte[]]$Bytes[9..40]
    $cipher = [byte[]]@()
    if ($Bytes.Length -gt 41) {
        $cipher = [byte[]]$Bytes[41..($Bytes.Length - 1)]
    }
    $expected = Get-FakeDpapiTag -Key $key -Entropy $Entropy -Cipher $cipher
    if ([System.Convert]::ToBase64String($expected) -ne [System.Convert]::ToBase64String($tag)) {
        throw $invalid
    }
    $stream = Get-FakeDpapiStream -Key $key -Entropy $Entropy -Length $cipher.Length
    $plain = Microsoft.PowerShell.Utility\New-Object -TypeName 'byte[]' -ArgumentList $cipher.Length
    for ($i = 0; $i -lt $cipher.Length; $i++) {
        $plain[$i] = $cipher[$i] -bxor $stream[$i]
    }
    return , $plain
}

Set-Alias -Name 'Get-SmbvolProgramDataPath' -Value 'Get-FakeProgramDataPath'
Set-Alias -Name 'Get-SmbvolTaskProgramDataPath' -Value 'Get-FakeProgramDataPath'
Set-Alias -Name 'Protect-SmbvolLocalMachineData' -Value 'Protect-FakeLocalMachineData'
Set-Alias -Name 'Unprotect-SmbvolLocalMachineData' -Value 'Unprotect-FakeLocalMachineData'
Set-Alias -Name 'Close-SmbvolComObject' -Value 'Close-FakeComObject'

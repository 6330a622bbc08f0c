# Windows itself: this host's names and addresses, name resolution, CIM queries of root/cimv2
# (Win32_OperatingSystem, Win32_ComputerSystem, Win32_DiskDrive), the registry (HKLM:), and
# services. Dot-sourced by FakeHost.psm1.
#
# state.host = {name, domain, addresses, os: {version, build, caption}}
# state.dns = {name: [addresses]} (other hosts); state.registry = {'HKLM:\Key\Path': {value: data}}
# state.services = {Name: {status, start_type}}

function Get-FakeHost {
    $state = Get-FakeState
    if (-not $state.ContainsKey('host') -or $null -eq $state['host']) {
        $state['host'] = @{ name = 'hv01'; domain = ''; addresses = @() }
    }
    return $state['host']
}

function Get-FakeHostIdentity {
    # Stands in for Get-SmbvolHostIdentity (IPGlobalProperties and NetworkInterface read Linux).
    $hostInfo = Get-FakeHost
    $addresses = Microsoft.PowerShell.Utility\New-Object -TypeName System.Collections.Generic.List[string]
    $addresses.Add('127.0.0.1')
    $addresses.Add('::1')
    foreach ($address in @($hostInfo['addresses'])) {
        if ($null -ne $address) {
            $addresses.Add([string]$address)
        }
    }
    return @{
        computer_name = ([string]$hostInfo['name']).ToUpperInvariant()
        host_name = [string]$hostInfo['name']
        domain_name = [string]$hostInfo['domain']
        addresses = $addresses.ToArray()
    }
}

function Resolve-FakeHostName {
    # Stands in for Resolve-SmbvolHostName: this host's names resolve to its addresses, the names
    # in state.dns to theirs; anything else does not resolve (SocketException 11001, as
    # Dns.GetHostAddresses throws it).
    param([string]$Name)
    $hostInfo = Get-FakeHost
    $wanted = $Name.ToLowerInvariant().TrimEnd('.')
    $own = @(([string]$hostInfo['name']).ToLowerInvariant())
    if (-not [string]::IsNullOrEmpty([string]$hostInfo['domain'])) {
        $own += (([string]$hostInfo['name']) + '.' + [string]$hostInfo['domain']).ToLowerInvariant()
    }
    if ($own -contains $wanted) {
        return @($hostInfo['addresses'])
    }
    $state = Get-FakeState
    if ($state.ContainsKey('dns') -and $null -ne $state['dns']) {
        foreach ($key in $state['dns'].Keys) {
            if ([string]::Equals([string]$key, $wanted, [System.StringComparison]::OrdinalIgnoreCase)) {
                return @($state['dns'][$key])
            }
        }
    }
    throw (Microsoft.PowerShell.Utility\New-Object -TypeName System.Net.Sockets.SocketException -ArgumentList 11001)
}

function Get-FakeCimInstances {
    # Stands in for Get-SmbvolCimInstances (no CIM on Linux): root/cimv2 classes of the model.
    param([string]$Namespace, [string]$ClassName, [string[]]$Property)
    $hostInfo = Get-FakeHost
    $rows = @()
    switch ($ClassName) {
        'Win32_OperatingSystem' {
            $os = @{ version = '10.0.17763'; build = '17763'; caption = 'Microsoft Windows Server 2019 Datacenter' }
            if ($hostInfo.ContainsKey('os') -and $null -ne $hostInfo['os']) {
                $os = $hostInfo['os']
            }
            $rows = @(@{ Version = [string]$os['version']; BuildNumber = [string]$os['build']; Caption = [string]$os['caption'] })
        }
        'Win32_ComputerSystem' {
            $domain = [string]$hostInfo['domain']
            if ($domain -eq '') {
                $domain = 'WORKGROUP'
            }
            $rows = @(@{ Name = ([string]$hostInfo['name']).ToUpperInvariant(); DNSHostName = [string]$hostInfo['name']; Domain = $domain; PartOfDomain = ([string]$hostInfo['domain'] -ne '') })
        }
        'Win32_DiskDrive' {
            if (Get-Command -Name 'Get-FakeDiskDrives' -ErrorAction SilentlyContinue) {
                $rows = @(Get-FakeDiskDrives)
            }
        }
        default {
            throw (New-FakeCimException -Message ('Invalid class ' + $ClassName) -Status 'InvalidClass')
        }
    }
    foreach ($row in $rows) {
        $values = [ordered]@{}
        foreach ($name in $Property) {
            $values[$name] = $row[$name]
        }
        [pscustomobject]$values
    }
}

function Invoke-FakeCimMethod {
    # Stands in for Invoke-SmbvolCimMethod: the static CIM methods the model knows
    # (Register-FakeCimMethod in the other parts).
    param([string]$Namespace, [string]$ClassName, [string]$MethodName, $Arguments)
    $key = $ClassName + '.' + $MethodName
    $script:Calls.Add($key)
    Invoke-FakeFault -Cmdlet $null -Name $key
    $body = $script:CimMethods[$key]
    if ($null -eq $body) {
        throw (New-FakeCimException -Message ('the fake host does not model ' + $key) -Status 'NotSupported')
    }
    $values = @{}
    foreach ($argument in $Arguments) {
        $values[$argument.Name] = $argument.Value
    }
    return (& $body $values)
}

$script:CimMethods = @{}
function Register-FakeCimMethod {
    param([string]$ClassName, [string]$MethodName, [scriptblock]$Body)
    $script:CimMethods[$ClassName + '.' + $MethodName] = $Body
}

function New-FakeCimMethodResult {
    # What CimSession.InvokeMethod returns: ReturnValue.Value and OutParameters.
    param([long]$ReturnValue)
    return [pscustomobject]@{ ReturnValue = [pscustomobject]@{ Name = 'ReturnValue'; Value = [uint32]$ReturnValue }; OutParameters = @() }
}

function New-FakeNamedMutex {
    # Stands in for New-SmbvolNamedMutex: every fake host has its own namespace of named objects
    # (as every Windows host has), so fake hosts running side by side on this machine never
    # share a mutex. $env:SMBVOL_FAKEHOST_ID names the host.
    param([string]$Name)
    $local = $Name
    if ($Name.StartsWith('Global\')) {
        $local = $Name.Substring(7)
    }
    return Microsoft.PowerShell.Utility\New-Object -TypeName System.Threading.Mutex -ArgumentList $false, ('Global\fakehost-' + [string]$env:SMBVOL_FAKEHOST_ID + '-' + $local)
}

Set-Alias -Name 'New-SmbvolNamedMutex' -Value 'New-FakeNamedMutex'
Set-Alias -Name 'Get-SmbvolHostIdentity' -Value 'Get-FakeHostIdentity'
Set-Alias -Name 'Resolve-SmbvolHostName' -Value 'Resolve-FakeHostName'
Set-Alias -Name 'Get-SmbvolCimInstances' -Value 'Get-FakeCimInstances'
Set-Alias -Name 'Invoke-SmbvolCimMethod' -Value 'Invoke-FakeCimMethod'

# --------------------------------------------------------------------------------------------
# The registry (HKLM: only)
# --------------------------------------------------------------------------------------------

function Test-FakeRegistryPath {
    param([string]$Path)
    return ([string]$Path).StartsWith('HKLM:\', [System.StringComparison]::OrdinalIgnoreCase) -or ([string]$Path).StartsWith('Registry::HKEY_LOCAL_MACHINE\', [System.StringComparison]::OrdinalIgnoreCase)
}

function Get-FakeRegistryKeyName {
    param([string]$Path)
    $text = [string]$Path
    if ($text.StartsWith('Registry::HKEY_LOCAL_MACHINE\', [System.StringComparison]::OrdinalIgnoreCase)) {
        $text = 'HKLM:\' + $text.Substring(29)
    }
    return $text.TrimEnd('\')
}

function Get-FakeRegistry {
    $registry = Get-FakeStateTable -Name 'registry'
    if ($null -ne ${function:Sync-FakeMpioRegistry}) {
        # Keys Windows has because of other state (Storage.ps1: the msdsm keys of MPIO).
        Sync-FakeMpioRegistry -Registry $registry
    }
    return $registry
}

function Find-FakeRegistryKey {
    # The registry key's name as stored (keys are case-insensitive), or $null.
    param([string]$Path)
    $name = Get-FakeRegistryKeyName -Path $Path
    $registry = Get-FakeRegistry
    foreach ($key in @($registry.Keys)) {
        if ([string]::Equals([string]$key, $name, [System.StringComparison]::OrdinalIgnoreCase)) {
            return [string]$key
        }
    }
    # A parent of a stored key exists too.
    foreach ($key in @($registry.Keys)) {
        if (([string]$key).StartsWith($name + '\', [System.StringComparison]::OrdinalIgnoreCase)) {
            $registry[$name] = @{}
            return $name
        }
    }
    return $null
}

function New-FakePathNotFound {
    param([string]$Path, [string]$Command)
    $exception = Microsoft.PowerShell.Utility\New-Object -TypeName System.Management.Automation.ItemNotFoundException -ArgumentList ('Cannot find path ''' + $Path + ''' because it does not exist.')
    return New-FakeErrorRecord -Exception $exception -ErrorId ('PathNotFound,Microsoft.PowerShell.Commands.' + $Command) -Category 'ObjectNotFound' -Target $Path
}

function New-FakePropertyNotFound {
    param([string]$Path, [string]$Name, [string]$Command)
    $exception = Microsoft.PowerShell.Utility\New-Object -TypeName System.Management.Automation.PSArgumentException -ArgumentList ('Property ' + $Name + ' does not exist at path ' + $Path + '.')
    return New-FakeErrorRecord -Exception $exception -ErrorId ('System.Management.Automation.PSArgumentException,Microsoft.PowerShell.Commands.' + $Command) -Category 'InvalidArgument' -Target $Name
}

function Get-FakePathArgument {
    param([System.Collections.IDictionary]$P)
    if ($P.ContainsKey('LiteralPath')) {
        return @($P['LiteralPath'])[0]
    }
    if ($P.ContainsKey('Path')) {
        return @($P['Path'])[0]
    }
    return $null
}

function Find-FakeRegistryKeyOrError {
    # The registry key of $Path, or $null after the cmdlet's "path not found" error.
    param($Cmdlet, [string]$Path, [string]$Command)
    $key = Find-FakeRegistryKey -Path $Path
    if ($null -eq $key) {
        Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakePathNotFound -Path $Path -Command $Command)
    }
    return $key
}

Register-FakeCmdlet -Core -Name 'Test-Path' -Body {
    param($Cmdlet, $Set, $P)
    $path = [string](Get-FakePathArgument -P $P)
    if (Test-FakeRegistryPath -Path $path) {
        $type = [string]$P['PathType']
        if ($type -eq 'Leaf') {
            return $false
        }
        return ($null -ne (Find-FakeRegistryKey -Path $path))
    }
    # UNC paths, and drive paths (the folders of this host's own shares), go to the SMB file
    # model; it forwards the drive paths it does not hold.
    if (($path.StartsWith('\\') -or $path -match '^[A-Za-z]:\\') -and (Get-Command -Name 'Test-FakeUncPath' -ErrorAction SilentlyContinue)) {
        return (Test-FakeUncPath -Path $path -PathType ([string]$P['PathType']))
    }
    return $FakeForward
}

Register-FakeCmdlet -Core -Name 'Get-ItemProperty' -Body {
    param($Cmdlet, $Set, $P)
    $path = [string](Get-FakePathArgument -P $P)
    if (-not (Test-FakeRegistryPath -Path $path)) {
        return $FakeForward
    }
    $key = Find-FakeRegistryKeyOrError -Cmdlet $Cmdlet -Path $path -Command 'GetItemPropertyCommand'
    if ($null -eq $key) {
        return
    }
    $values = (Get-FakeRegistry)[$key]
    $out = [ordered]@{}
    if ($P.ContainsKey('Name')) {
        foreach ($name in @($P['Name'])) {
            $found = $false
            foreach ($valueName in @($values.Keys)) {
                if ([string]::Equals([string]$valueName, [string]$name, [System.StringComparison]::OrdinalIgnoreCase)) {
                    $out[[string]$valueName] = $values[$valueName]
                    $found = $true
                }
            }
            if (-not $found) {
                Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakePropertyNotFound -Path $path -Name ([string]$name) -Command 'GetItemPropertyCommand')
            }
        }
        if ($out.Count -eq 0) {
            return
        }
    } else {
        foreach ($valueName in @($values.Keys)) {
            $out[[string]$valueName] = $values[$valueName]
        }
    }
    $out['PSPath'] = 'Microsoft.PowerShell.Core\Registry::HKEY_LOCAL_MACHINE\' + $key.Substring(6)
    $out['PSProvider'] = 'Microsoft.PowerShell.Core\Registry'
    return [pscustomobject]$out
}

Register-FakeCmdlet -Core -Name 'New-Item' -Body {
    param($Cmdlet, $Set, $P)
    $path = [string](Get-FakePathArgument -P $P)
    if (-not (Test-FakeRegistryPath -Path $path)) {
        return $FakeForward
    }
    $name = Get-FakeRegistryKeyName -Path $path
    $registry = Get-FakeRegistry
    $existing = Find-FakeRegistryKey -Path $name
    if ($null -ne $existing -and -not $P.ContainsKey('Force')) {
        $exception = Microsoft.PowerShell.Utility\New-Object -TypeName System.IO.IOException -ArgumentList ('A key at this path already exists.')
        Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakeErrorRecord -Exception $exception -ErrorId 'System.IO.IOException,Microsoft.PowerShell.Commands.NewItemCommand' -Category 'ResourceExists' -Target $path)
        return
    }
    if ($null -eq $existing) {
        $registry[$name] = @{}
        Save-FakeState
    }
    return [pscustomobject]@{ Name = $name; PSPath = 'Microsoft.PowerShell.Core\Registry::HKEY_LOCAL_MACHINE\' + $name.Substring(6) }
}

Register-FakeCmdlet -Core -Name 'New-ItemProperty' -Body {
    param($Cmdlet, $Set, $P)
    $path = [string](Get-FakePathArgument -P $P)
    if (-not (Test-FakeRegistryPath -Path $path)) {
        return $FakeForward
    }
    $key = Find-FakeRegistryKeyOrError -Cmdlet $Cmdlet -Path $path -Command 'NewItemPropertyCommand'
    if ($null -eq $key) {
        return
    }
    $values = (Get-FakeRegistry)[$key]
    $name = [string]$P['Name']
    foreach ($valueName in @($values.Keys)) {
        if ([string]::Equals([string]$valueName, $name, [System.StringComparison]::OrdinalIgnoreCase)) {
            if (-not $P.ContainsKey('Force')) {
                $exception = Microsoft.PowerShell.Utility\New-Object -TypeName System.IO.IOException -ArgumentList ('The property already exists.')
                Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakeErrorRecord -Exception $exception -ErrorId 'System.IO.IOException,Microsoft.PowerShell.Commands.NewItemPropertyCommand' -Category 'ResourceExists' -Target $name)
                return
            }
            $values.Remove($valueName)
        }
    }
    $values[$name] = [string]$P['Value']
    Save-FakeState
    return [pscustomobject]@{ $name = [string]$P['Value'] }
}

Register-FakeCmdlet -Core -Name 'Remove-ItemProperty' -Body {
    param($Cmdlet, $Set, $P)
    $path = [string](Get-FakePathArgument -P $P)
    if (-not (Test-FakeRegistryPath -Path $path)) {
        return $FakeForward
    }
    $key = Find-FakeRegistryKeyOrError -Cmdlet $Cmdlet -Path $path -Command 'RemoveItemPropertyCommand'
    if ($null -eq $key) {
        return
    }
    $values = (Get-FakeRegistry)[$key]
    foreach ($name in @($P['Name'])) {
        $hit = $null
        foreach ($valueName in @($values.Keys)) {
            # -Name takes wildcards, as the real cmdlet does.
            if ([System.Management.Automation.WildcardPattern]::new([string]$name, 'IgnoreCase').IsMatch([string]$valueName)) {
                $hit = $valueName
            }
        }
        if ($null -eq $hit) {
            Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakePropertyNotFound -Path $path -Name ([string]$name) -Command 'RemoveItemPropertyCommand')
            continue
        }
        $values.Remove($hit)
    }
    Save-FakeState
}

# --------------------------------------------------------------------------------------------
# Services
# --------------------------------------------------------------------------------------------

function Get-FakeServices {
    return Get-FakeStateTable -Name 'services'
}

function New-FakeServiceObject {
    param([string]$Name, [hashtable]$Service)
    $object = [pscustomobject]@{ Name = $Name; ServiceName = $Name; DisplayName = $Name; Status = [string]$Service['status']; StartType = [string]$Service['start_type'] }
    $object.PSObject.TypeNames.Insert(0, 'System.ServiceProcess.ServiceController')
    return $object
}

function Find-FakeService {
    param($Cmdlet, [string]$Name, [string]$Command)
    $services = Get-FakeServices
    foreach ($key in @($services.Keys)) {
        if ([string]::Equals([string]$key, $Name, [System.StringComparison]::OrdinalIgnoreCase)) {
            return [string]$key
        }
    }
    $exception = Microsoft.PowerShell.Utility\New-Object -TypeName System.InvalidOperationException -ArgumentList ('Cannot find any service with service name ''' + $Name + '''.')
    Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakeErrorRecord -Exception $exception -ErrorId ('NoServiceFoundForGivenName,Microsoft.PowerShell.Commands.' + $Command) -Category 'ObjectNotFound' -Target $Name)
    return $null
}

Register-FakeCmdlet -Core -Name 'Get-Service' -Body {
    param($Cmdlet, $Set, $P)
    $services = Get-FakeServices
    if (-not $P.ContainsKey('Name')) {
        foreach ($key in @($services.Keys)) {
            New-FakeServiceObject -Name $key -Service $services[$key]
        }
        return
    }
    foreach ($name in @($P['Name'])) {
        $key = Find-FakeService -Cmdlet $Cmdlet -Name ([string]$name) -Command 'GetServiceCommand'
        if ($null -ne $key) {
            New-FakeServiceObject -Name $key -Service $services[$key]
        }
    }
}

Register-FakeCmdlet -Core -Name 'Start-Service' -Body {
    param($Cmdlet, $Set, $P)
    $services = Get-FakeServices
    $names = @()
    if ($P.ContainsKey('Name')) {
        $names = @($P['Name'])
    } elseif ($P.ContainsKey('InputObject')) {
        $names = @($P['InputObject'] | ForEach-Object { [string]$_.Name })
    }
    foreach ($name in $names) {
        $key = Find-FakeService -Cmdlet $Cmdlet -Name ([string]$name) -Command 'StartServiceCommand'
        if ($null -ne $key) {
            if ([string]$services[$key]['start_type'] -eq 'Disabled') {
                $exception = Microsoft.PowerShell.Utility\New-Object -TypeName System.InvalidOperationException -ArgumentList ('Service ''' + $key + ''' cannot be started due to the following error: Cannot start service ' + $key + ' on computer ''.''.')
                Write-FakeCmdletError -Cmdlet $Cmdlet -ErrorRecord (New-FakeErrorRecord -Exception $exception -ErrorId 'CouldNotStartService,Microsoft.PowerShell.Commands.StartServiceCommand' -Category 'OpenError' -Target $key)
                continue
            }
            $services[$key]['status'] = 'Running'
        }
    }
    Save-FakeState
}

Register-FakeCmdlet -Core -Name 'Set-Service' -Body {
    param($Cmdlet, $Set, $P)
    $services = Get-FakeServices
    $name = [string]$P['Name']
    $key = Find-FakeService -Cmdlet $Cmdlet -Name $name -Command 'SetServiceCommand'
    if ($null -eq $key) {
        return
    }
    if ($P.ContainsKey('StartupType')) {
        $services[$key]['start_type'] = [string]$P['StartupType']
    }
    if ($P.ContainsKey('Status')) {
        $services[$key]['status'] = [string]$P['Status']
    }
    Save-FakeState
}

# The fake Hyper-V host: the behaviour behind the generated modules (Hyper-V, SmbShare, Storage,
# iSCSI, NetTCPIP, StorageQoS, FakeHost.Core). It models Windows — objects, state, the errors
# the real modules throw — and holds no smbvol logic. Runs on PowerShell 7 (the engine) only.
#
# State: a hashtable read from the JSON file named by $env:SMBVOL_FAKEHOST_STATE (the schema of
# tests/contract/README.md, as tests/engine/runner.py writes it), written back after every call
# that changes it. Implementations: Register-FakeCmdlet -Name <cmdlet> -Body { param($Cmdlet,
# $Set, $P) ... } in the *.ps1 files of this folder; $Cmdlet is the generated function's
# $PSCmdlet (for WriteError / ThrowTerminatingError / WriteObject), $Set its parameter set, $P
# its bound parameters.
Set-StrictMode -Version 3.0

if ($null -eq ('Microsoft.HyperV.PowerShell.VirtualMachine' -as [type])) {
    # LoadFrom, not Add-Type -Path: the same types, without Add-Type's own start-up cost.
    $null = [System.Reflection.Assembly]::LoadFrom((Join-Path $PSScriptRoot 'FakeHost.Types.dll'))
}

$script:FakeState = $null
$script:FakeStatePath = $null
$script:Impl = @{}
$script:CoreImpl = @{}
$script:Calls = Microsoft.PowerShell.Utility\New-Object -TypeName System.Collections.Generic.List[string]
$script:RealCommands = @{}
$script:InEngineCommands = @('New-Object')

function Get-FakeState {
    # The host's state; read from $env:SMBVOL_FAKEHOST_STATE on first use.
    $path = [string]$env:SMBVOL_FAKEHOST_STATE
    if ($null -eq $script:FakeState -or $script:FakeStatePath -ne $path) {
        $script:FakeStatePath = $path
        if ($path -ne '' -and (Microsoft.PowerShell.Management\Test-Path -LiteralPath $path)) {
            $script:FakeState = Get-Content -LiteralPath $path -Raw | ConvertFrom-Json -AsHashtable
        } else {
            $script:FakeState = @{}
        }
    }
    return $script:FakeState
}

function Get-FakeStateTable {
    # The state's table -Name (a hashtable), made empty when the state has none.
    param([string]$Name)
    $state = Get-FakeState
    if (-not $state.ContainsKey($Name) -or $null -eq $state[$Name]) {
        $state[$Name] = @{}
    }
    return $state[$Name]
}

function Save-FakeState {
    if ($null -ne $script:FakeState -and [string]$script:FakeStatePath -ne '') {
        $json = ConvertTo-Json -InputObject $script:FakeState -Depth 30
        [System.IO.File]::WriteAllText($script:FakeStatePath, $json)
    }
}

function Export-FakeState {
    # The state as JSON (for the harness, in the same runspace).
    return ConvertTo-Json -InputObject (Get-FakeState) -Depth 30 -Compress
}

function Get-FakeCalls {
    return $script:Calls.ToArray()
}

function Register-FakeCmdlet {
    param([string]$Name, [scriptblock]$Body, [switch]$Core)
    if ($Core) {
        $script:CoreImpl[$Name] = $Body
    } else {
        $script:Impl[$Name] = $Body
    }
}

# --------------------------------------------------------------------------------------------
# Errors, shaped as the real modules throw them
# --------------------------------------------------------------------------------------------

function New-FakeErrorRecord {
    # An ErrorRecord. -Exception: the exception object (see New-FakeWin32Exception,
    # New-FakeCimException, New-FakeVirtualizationException) or a message for an
    # InvalidOperationException.
    param($Exception, [string]$ErrorId, [System.Management.Automation.ErrorCategory]$Category = 'NotSpecified', $Target = $null)
    if ($Exception -is [string]) {
        $Exception = Microsoft.PowerShell.Utility\New-Object -TypeName System.InvalidOperationException -ArgumentList $Exception
    }
    return Microsoft.PowerShell.Utility\New-Object -TypeName System.Management.Automation.ErrorRecord -ArgumentList $Exception, $ErrorId, $Category, $Target
}

function New-FakeWin32Exception {
    param([int]$Code, [string]$Message)
    if ([string]::IsNullOrEmpty($Message)) {
        return Microsoft.PowerShell.Utility\New-Object -TypeName System.ComponentModel.Win32Exception -ArgumentList $Code
    }
    return Microsoft.PowerShell.Utility\New-Object -TypeName System.ComponentModel.Win32Exception -ArgumentList $Code, $Message
}

function New-FakeCimException {
    # A CimException as a CDXML cmdlet surfaces it: CIM status, MSFT_WmiError data
    # (error_Code = the Windows or provider status, MessageId), HResult.
    param([string]$Message, [string]$Status = 'Failed', $ErrorCode = $null, [string]$MessageId = $null, [int]$HResult = -2146233088)
    $data = Microsoft.PowerShell.Utility\New-Object -TypeName FakeHost.Cim.CimErrorData
    $data.CimClassName = 'MSFT_WmiError'
    if ($null -ne $ErrorCode) {
        $data.CimInstanceProperties.Set('error_Code', [uint32]$ErrorCode)
    }
    if (-not [string]::IsNullOrEmpty($MessageId)) {
        $data.CimInstanceProperties.Set('MessageId', $MessageId)
    }
    $data.CimInstanceProperties.Set('Message', $Message)
    return Microsoft.PowerShell.Utility\New-Object -TypeName FakeHost.Cim.CimException -ArgumentList $Message, ([FakeHost.Cim.NativeErrorCode]$Status), $data, $HResult
}

function New-FakeVirtualizationException {
    param([string]$Message)
    return Microsoft.PowerShell.Utility\New-Object -TypeName Microsoft.HyperV.PowerShell.VirtualizationException -ArgumentList $Message
}

function Stop-FakeCmdlet {
    # A terminating error of the calling cmdlet.
    param($Cmdlet, $ErrorRecord)
    $Cmdlet.ThrowTerminatingError($ErrorRecord)
}

function Write-FakeCmdletError {
    # A non-terminating error of the calling cmdlet (-ErrorAction decides what it becomes).
    param($Cmdlet, $ErrorRecord)
    $Cmdlet.WriteError($ErrorRecord)
}

# --------------------------------------------------------------------------------------------
# Objects
# --------------------------------------------------------------------------------------------

function New-FakeHyperVObject {
    # An instance of a Hyper-V module class (FakeHost.Types.dll) with the given properties.
    param([string]$TypeName, [hashtable]$Property = @{})
    $object = Microsoft.PowerShell.Utility\New-Object -TypeName $TypeName
    foreach ($key in $Property.Keys) {
        $object.$key = $Property[$key]
    }
    return $object
}

function New-FakeCimInstance {
    # A CIM instance as the CDXML modules return it: its properties, and the type names
    # Microsoft.Management.Infrastructure.CimInstance#<namespace>/<class> that formatting and
    # parameter binding look at. (A real CimInstance cannot be made without the native MI
    # library.)
    param([string]$ClassName, [string]$Namespace, [System.Collections.IDictionary]$Property = @{})
    $object = [pscustomobject]$Property
    $object.PSObject.TypeNames.Clear()
    $object.PSObject.TypeNames.Add('Microsoft.Management.Infrastructure.CimInstance#' + $Namespace + '/' + $ClassName)
    $object.PSObject.TypeNames.Add('Microsoft.Management.Infrastructure.CimInstance#' + $ClassName)
    $object.PSObject.TypeNames.Add('Microsoft.Management.Infrastructure.CimInstance')
    $object.PSObject.TypeNames.Add('System.Object')
    $object | Add-Member -MemberType NoteProperty -Name 'CimClassName' -Value $ClassName -Force
    $object | Add-Member -MemberType NoteProperty -Name 'CimNamespace' -Value $Namespace -Force
    return $object
}

function Test-FakeCimInstance {
    # Parameter validation of CimInstance parameters: only CIM instances bind.
    param($InputObject)
    if ($null -eq $InputObject) {
        return $false
    }
    $names = @($InputObject.PSObject.TypeNames)
    if ($names -notcontains 'Microsoft.Management.Infrastructure.CimInstance') {
        throw ('Cannot convert the "' + [string]$InputObject + '" value of type "' + $InputObject.GetType().FullName + '" to type "Microsoft.Management.Infrastructure.CimInstance".')
    }
    return $true
}

function Get-FakeCimClassName {
    param($InputObject)
    if ($null -eq $InputObject -or $null -eq $InputObject.PSObject.Properties['CimClassName']) {
        return $null
    }
    return [string]$InputObject.CimClassName
}

# --------------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------------

function Invoke-FakeFault {
    # An injected failure for $Name (state.faults: [{cmdlet, skip, error}]), thrown as the real
    # module would: error = {exception: win32 | cim | hyperv | message, native_code, message,
    # error_id, category, status, hresult, terminating}.
    param($Cmdlet, [string]$Name, [switch]$Named)
    $state = Get-FakeState
    # -contains compares case-insensitively, as command names are.
    if (-not $state.ContainsKey('faults') -or $null -eq $state['faults']) {
        return
    }
    $faults = [System.Collections.ArrayList]@($state['faults'])
    for ($i = 0; $i -lt $faults.Count; $i++) {
        $fault = $faults[$i]
        $targets = @($fault['cmdlet'] | ForEach-Object { [string]$_ })
        if ($targets -notcontains $Name -and ($Named -or $targets -notcontains '*')) {
            continue
        }
        if ([int]$fault['skip'] -gt 0) {
            $fault['skip'] = [int]$fault['skip'] - 1
            Save-FakeState
            return
        }
        $faults.RemoveAt($i)
        $state['faults'] = @($faults)
        Save-FakeState
        $spec = $fault['error']
        $message = [string]$spec['message']
        $code = $spec['native_code']
        switch ([string]$spec['exception']) {
            'win32' { $exception = New-FakeWin32Exception -Code ([int]$code) -Message $message }
            'cim' { $exception = New-FakeCimException -Message $message -ErrorCode $code -Status ([string]$spec['status']) }
            'hyperv' { $exception = New-FakeVirtualizationException -Message $message }
            default { $exception = Microsoft.PowerShell.Utility\New-Object -TypeName System.InvalidOperationException -ArgumentList $message }
        }
        $errorId = [string]$spec['error_id']
        if ($errorId -eq '') {
            $errorId = 'FakeHostFault,' + $Name
        }
        $category = 'NotSpecified'
        if (-not [string]::IsNullOrEmpty([string]$spec['category'])) {
            $category = [string]$spec['category']
        }
        $record = New-FakeErrorRecord -Exception $exception -ErrorId $errorId -Category $category
        if ($null -eq $Cmdlet) {
            # A .NET call (CIM method): the exception itself, as InvokeMethod throws it.
            throw $exception
        }
        Stop-FakeCmdlet -Cmdlet $Cmdlet -ErrorRecord $record
    }
}

function Invoke-FakeCmdlet {
    # The body of every generated host cmdlet.
    param($Cmdlet, [string]$Name, [System.Collections.IDictionary]$Bound)
    $script:Calls.Add($Name)
    $body = $script:Impl[$Name]
    if ($null -eq $body) {
        $record = New-FakeErrorRecord -Exception ('the fake host does not model ' + $Name + ' yet') -ErrorId ('FakeHostNotModelled,' + $Name) -Category 'NotImplemented'
        Stop-FakeCmdlet -Cmdlet $Cmdlet -ErrorRecord $record
    }
    Invoke-FakeFault -Cmdlet $Cmdlet -Name $Name
    & $body $Cmdlet $Cmdlet.ParameterSetName $Bound
}

function Invoke-FakeCoreCmdlet {
    # The body of the shadowed core cmdlets (FakeHost.Core): the model answers for the paths
    # Linux lacks (HKLM:, UNC, services); everything else goes to the real cmdlet.
    param($Cmdlet, [string]$Name, [System.Collections.IDictionary]$Bound)
    $body = $script:CoreImpl[$Name]
    if ($null -ne $body) {
        # New-Object makes objects in the engine, the host is not asked: a fault of "any
        # cmdlet" ('*') is not one of it.
        if ($script:InEngineCommands -notcontains $Name) {
            $script:Calls.Add($Name)
            Invoke-FakeFault -Cmdlet $Cmdlet -Name $Name
        } elseif ($null -eq $script:FakeState -or $script:FakeState['faults']) {
            Invoke-FakeFault -Cmdlet $Cmdlet -Name $Name -Named
        }
        $answer = & $body $Cmdlet $Cmdlet.ParameterSetName $Bound
        if (-not ($answer -is [string] -and $answer -eq '__fakehost_forward__')) {
            return $answer
        }
    }
    $real = $script:RealCommands[$Name]
    if ($null -eq $real) {
        $real = Get-Command -Name ('Microsoft.PowerShell.Management\' + $Name), ('Microsoft.PowerShell.Security\' + $Name), ('Microsoft.PowerShell.Utility\' + $Name) -ErrorAction SilentlyContinue | Select-Object -First 1
        $script:RealCommands[$Name] = $real
    }
    if ($null -eq $real) {
        $record = New-FakeErrorRecord -Exception (Microsoft.PowerShell.Utility\New-Object -TypeName System.Management.Automation.CommandNotFoundException -ArgumentList ('The term ''' + $Name + ''' is not recognized')) -ErrorId 'CommandNotFoundException' -Category 'ObjectNotFound'
        Stop-FakeCmdlet -Cmdlet $Cmdlet -ErrorRecord $record
    }
    & $real @Bound
}

$FakeForward = '__fakehost_forward__'

# Every runspace of the engine imports this module: plain string joins, no provider calls.
foreach ($part in @('Windows.ps1', 'Security.ps1', 'Tasks.ps1', 'HyperV.ps1', 'Smb.ps1', 'Storage.ps1', 'Iscsi.ps1')) {
    . ($PSScriptRoot + [System.IO.Path]::DirectorySeparatorChar + $part)
}

Import-Module -Name FakeHost.Core -Global

Export-ModuleMember -Function @(
    'Get-FakeState', 'Save-FakeState', 'Export-FakeState', 'Get-FakeCalls', 'Register-FakeCmdlet',
    'New-FakeErrorRecord', 'New-FakeWin32Exception', 'New-FakeCimException', 'New-FakeVirtualizationException',
    'Stop-FakeCmdlet', 'Write-FakeCmdletError', 'New-FakeHyperVObject', 'New-FakeCimInstance',
    'Test-FakeCimInstance', 'Get-FakeCimClassName', 'Invoke-FakeCmdlet', 'Invoke-FakeCoreCmdlet',
    'Get-FakeHostIdentity', 'Resolve-FakeHostName', 'Get-FakeCimInstances', 'Invoke-FakeCimMethod',
    'Register-FakeCimMethod', 'New-FakeCimMethodResult', 'Invoke-FakeFault', 'New-FakeNamedMutex',
    'Test-FakeNetworkLogon', 'Invoke-FakeFolderProbe', 'Set-FakeLogonSession', 'Get-FakeLogonSession',
    'Get-FakeProgramDataPath', 'Protect-FakeLocalMachineData', 'Unprotect-FakeLocalMachineData',
    'Close-FakeComObject'
) -Alias @('Get-SmbvolHostIdentity', 'Resolve-SmbvolHostName', 'Get-SmbvolCimInstances', 'Invoke-SmbvolCimMethod',
    'New-SmbvolNamedMutex', 'Test-SmbvolNetworkLogon', 'Invoke-SmbvolFolderProbe', 'Get-SmbvolProgramDataPath',
    'Get-SmbvolTaskProgramDataPath', 'Protect-SmbvolLocalMachineData', 'Unprotect-SmbvolLocalMachineData',
    'Close-SmbvolComObject')

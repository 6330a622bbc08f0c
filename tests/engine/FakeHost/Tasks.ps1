# The Task Scheduler of the fake host (New-Object -ComObject 'Schedule.Service', Security.ps1):
# FakeHost.TaskScheduler's objects, with the registered tasks kept in the state and a task's
# action run when the task runs. Dot-sourced by FakeHost.psm1.
#
# state.scheduled_tasks = {name: {user, logon_type, run_level, hidden, path, arguments,
# working_directory, last_result}}
#
# Running a task: its (one) action must start this host's Windows PowerShell
# (%SystemRoot%\System32\WindowsPowerShell\v1.0\powershell.exe) with -EncodedCommand, the only
# program the model has; the command runs as SYSTEM (a service logon, not the caller's network
# logon) in a new runspace with the host's modules, with the action's working directory as the
# process's current directory; its exit code is the task's LastTaskResult. A program that is
# not there ends the run with 0x80070002 (ERROR_FILE_NOT_FOUND), a missing working directory
# with 0x8007010B (ERROR_DIRECTORY), as the Task Scheduler reports them.

function Get-FakeScheduledTasks {
    return Get-FakeStateTable -Name 'scheduled_tasks'
}

function New-FakeTaskService {
    $hooks = Microsoft.PowerShell.Utility\New-Object -TypeName FakeHost.TaskScheduler.TaskHooks
    $hooks.Register = { param($Task) Register-FakeScheduledTask -Task $Task }
    $hooks.Delete = { param($Name) Unregister-FakeScheduledTask -Name $Name }
    $hooks.Run = { param($Task) Invoke-FakeScheduledTask -Task $Task }
    return (Microsoft.PowerShell.Utility\New-Object -TypeName FakeHost.TaskScheduler.TaskService -ArgumentList $hooks)
}

function Register-FakeScheduledTask {
    param($Task)
    $action = $Task.Definition.Actions[0]
    (Get-FakeScheduledTasks)[$Task.Name] = @{
        user = $Task.UserId; logon_type = $Task.LogonType; run_level = $Task.Definition.Principal.RunLevel
        hidden = $Task.Definition.Settings.Hidden; path = $action.Path; arguments = $action.Arguments
        working_directory = $action.WorkingDirectory; last_result = $Task.LastTaskResult
    }
    Save-FakeState
}

function Unregister-FakeScheduledTask {
    param([string]$Name)
    $null = (Get-FakeScheduledTasks).Remove($Name)
    Save-FakeState
}

function Get-FakeEncodedCommand {
    # The -EncodedCommand argument of a powershell.exe command line (any unambiguous prefix of
    # the parameter name, as powershell.exe takes it), decoded; $null without one.
    param([string]$Arguments)
    $words = @($Arguments -split '\s+' | Where-Object { $_ -ne '' })
    for ($i = 0; $i -lt $words.Count - 1; $i++) {
        $word = $words[$i]
        if ($word.StartsWith('-') -and $word.Length -ge 3 -and 'encodedcommand'.StartsWith($word.Substring(1).ToLowerInvariant())) {
            return [System.Text.Encoding]::Unicode.GetString([System.Convert]::FromBase64String($words[$i + 1]))
        }
    }
    return $null
}

function Invoke-FakeScheduledTask {
    # Runs the task's action; returns its exit code (or the Task Scheduler's error).
    param($Task)
    $action = $Task.Definition.Actions[0]
    $entry = (Get-FakeScheduledTasks)[$Task.Name]
    if (-not ([string]$action.Path).EndsWith('\WindowsPowerShell\v1.0\powershell.exe', [System.StringComparison]::OrdinalIgnoreCase)) {
        return -2147024894
    }
    $directory = [string]$action.WorkingDirectory
    if ($directory -ne '' -and -not [System.IO.Directory]::Exists($directory)) {
        return -2147024629
    }
    $text = Get-FakeEncodedCommand -Arguments ([string]$action.Arguments)
    if ($null -eq $text) {
        throw ('the fake Task Scheduler runs powershell.exe -EncodedCommand only, not: ' + [string]$action.Arguments)
    }
    Save-FakeState
    $file = Join-Path ([System.IO.Path]::GetTempPath()) ('fakehost-task-' + [System.Guid]::NewGuid().ToString('N') + '.ps1')
    [System.IO.File]::WriteAllText($file, $text)
    $saved = [System.Environment]::CurrentDirectory
    $iss = [System.Management.Automation.Runspaces.InitialSessionState]::CreateDefault2()
    $iss.ImportPSModule([string[]]@('FakeHost'))
    $runspace = [System.Management.Automation.Runspaces.RunspaceFactory]::CreateRunspace($iss)
    $ps = $null
    $code = 0
    try {
        $runspace.Open()
        $ps = [powershell]::Create()
        $ps.Runspace = $runspace
        $null = $ps.AddScript('param($File, $Directory) FakeHost\Set-FakeLogonSession -Kind service; if ($Directory -ne '''') { [System.Environment]::CurrentDirectory = $Directory; Set-Location -LiteralPath $Directory }; $global:LASTEXITCODE = 0; & $File; $global:LASTEXITCODE').AddArgument($file).AddArgument($directory)
        try {
            $answer = @($ps.Invoke())
            if ($answer.Count -gt 0 -and $null -ne $answer[-1]) {
                $code = [int]$answer[-1]
            }
        } catch {
            # An error that ends powershell.exe -EncodedCommand: exit code 1.
            $code = 1
        }
        if ($ps.HadErrors -and $code -eq 0 -and $ps.Streams.Error.Count -gt 0 -and $ps.InvocationStateInfo.State -eq 'Failed') {
            $code = 1
        }
    } finally {
        [System.Environment]::CurrentDirectory = $saved
        if ($null -ne $ps) {
            $ps.Dispose()
        }
        $runspace.Dispose()
        [System.IO.File]::Delete($file)
        # What the task's process changed is in the state file: read it again.
        $script:FakeState = $null
    }
    $entry = (Get-FakeScheduledTasks)[$Task.Name]
    if ($null -ne $entry) {
        $entry['last_result'] = $code
        Save-FakeState
    }
    return $code
}

# Runs many smbvol scripts in one engine process, each in a fresh runspace, exactly as an
# executor sends them: the fixed bootstrap (smbvol.executors.base.BOOTSTRAP) reading the stdin
# payload (script, parameters, secrets) through $input.
#
# Protocol (one JSON document per line, both ways):
#   in:  {"id", "bootstrap", "payload", "state_path", "computer_name", "locks": [mutex names],
#         "coverage": null | {"path": file the script text is written to, "lines": [lines]},
#         "plain": true to run without the fake host (optional)}
#   out: {"id", "stdout", "stderr", "hits": [line numbers] | null, "seconds"}
# An empty line or end of input ends the harness.
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0
$utf8 = New-Object -TypeName System.Text.UTF8Encoding -ArgumentList $false
$reader = New-Object -TypeName System.IO.StreamReader -ArgumentList ([Console]::OpenStandardInput()), $utf8
$writer = New-Object -TypeName System.IO.StreamWriter -ArgumentList ([Console]::OpenStandardOutput()), $utf8
$writer.AutoFlush = $true
# No script run here starts a program, and PowerShell looks for every command it has not met yet
# as a program on PATH first, reading each of its folders (/usr/bin alone has a thousand files)
# before it autoloads a module: without a PATH that walk is gone, and nothing else changes.
[System.Environment]::SetEnvironmentVariable('PATH', $null)
$iss = [System.Management.Automation.Runspaces.InitialSessionState]::CreateDefault2()
# The fake host is loaded before the script runs, as a host's modules are there before it: its
# stand-ins for the host-fact functions (aliases) are then in place from the first statement.
$iss.ImportPSModule([string[]]@('FakeHost'))
# A job with "plain": true runs without the fake host (its script brings its own fakes).
$plainIss = [System.Management.Automation.Runspaces.InitialSessionState]::CreateDefault2()

function Start-LockHolder {
    # Holds the named mutexes on another thread (another client of the host) until released.
    param([string[]]$Names)
    $ready = New-Object -TypeName System.Threading.ManualResetEventSlim -ArgumentList $false
    $release = New-Object -TypeName System.Threading.ManualResetEventSlim -ArgumentList $false
    $ps = [powershell]::Create()
    $null = $ps.AddScript({
        param($Names, $Ready, $Release)
        $held = @()
        foreach ($name in $Names) {
            $mutex = New-Object -TypeName System.Threading.Mutex -ArgumentList $false, $name
            $null = $mutex.WaitOne()
            $held += $mutex
        }
        $Ready.Set()
        $Release.Wait()
        foreach ($mutex in $held) {
            $mutex.ReleaseMutex()
            $mutex.Dispose()
        }
    }).AddArgument($Names).AddArgument($ready).AddArgument($release)
    $handle = $ps.BeginInvoke()
    $null = $ready.Wait(10000)
    return @{ ps = $ps; handle = $handle; release = $release }
}

function Stop-LockHolder {
    param($Holder)
    if ($null -eq $Holder) {
        return
    }
    $Holder.release.Set()
    $null = $Holder.ps.EndInvoke($Holder.handle)
    $Holder.ps.Dispose()
}

function Invoke-Job {
    param($Job)
    $clock = [System.Diagnostics.Stopwatch]::StartNew()
    [System.Environment]::SetEnvironmentVariable('SMBVOL_FAKEHOST_STATE', [string]$Job.state_path)
    [System.Environment]::SetEnvironmentVariable('COMPUTERNAME', [string]$Job.computer_name)
    $holder = $null
    if (@($Job.locks).Count -gt 0) {
        $holder = Start-LockHolder -Names ([string[]]@($Job.locks))
    }
    $sessionState = $iss
    if ($null -ne $Job.PSObject.Properties['plain'] -and $true -eq $Job.plain) {
        $sessionState = $plainIss
    }
    $runspace = [System.Management.Automation.Runspaces.RunspaceFactory]::CreateRunspace($sessionState)
    $runspace.Open()
    $ps = [powershell]::Create()
    $ps.Runspace = $runspace
    $hits = $null
    $stdout = New-Object -TypeName System.Text.StringBuilder
    $stderr = New-Object -TypeName System.Text.StringBuilder
    try {
        $bootstrap = [string]$Job.bootstrap
        if ($null -ne $Job.coverage) {
            # Coverage: the same script text, run from a file so that line breakpoints can
            # count the statements it executes (the bootstrap is unchanged otherwise).
            $bootstrap = $bootstrap.Replace('$block = [ScriptBlock]::Create($text)', ('[System.IO.File]::WriteAllText(''' + ([string]$Job.coverage.path).Replace("'", "''") + ''', $text); $block = ''' + ([string]$Job.coverage.path).Replace("'", "''") + ''''))
            $null = $ps.AddScript('param($Path, $Lines) $global:SmbvolCoverageHits = [System.Collections.Generic.HashSet[int]]::new(); foreach ($line in $Lines) { $null = Set-PSBreakpoint -Script $Path -Line $line -Action { $null = $global:SmbvolCoverageHits.Add($_.Line); continue } }').AddArgument([string]$Job.coverage.path).AddArgument([int[]]@($Job.coverage.lines))
            [System.IO.File]::WriteAllText([string]$Job.coverage.path, '')
            $null = $ps.Invoke()
            $ps.Commands.Clear()
        }
        $lines = New-Object -TypeName System.Collections.Generic.List[string]
        foreach ($line in ([string]$Job.payload).Split([char]10)) {
            $lines.Add($line)
        }
        $null = $ps.AddScript($bootstrap)
        try {
            foreach ($item in $ps.Invoke($lines)) {
                $null = $stdout.AppendLine([string]$item)
            }
        } catch {
            $null = $stderr.AppendLine([string]$_.Exception.Message)
        }
        foreach ($record in $ps.Streams.Error) {
            $null = $stderr.AppendLine([string]$record)
        }
        if ($null -ne $Job.coverage) {
            $ps.Commands.Clear()
            $ps.Streams.ClearStreams()
            $null = $ps.AddScript('@($global:SmbvolCoverageHits)')
            $hits = @($ps.Invoke() | ForEach-Object { [int]$_ })
        }
    } finally {
        $ps.Dispose()
        $runspace.Dispose()
        Stop-LockHolder -Holder $holder
    }
    return @{
        id = $Job.id
        stdout = $stdout.ToString()
        stderr = $stderr.ToString()
        hits = $hits
        seconds = $clock.Elapsed.TotalSeconds
    }
}

while ($true) {
    $text = $reader.ReadLine()
    if ($null -eq $text -or $text.Trim() -eq '') {
        break
    }
    $job = ConvertFrom-Json -InputObject $text
    try {
        $answer = Invoke-Job -Job $job
    } catch {
        $answer = @{ id = $job.id; stdout = ''; stderr = 'harness: ' + [string]$_; hits = $null; seconds = 0 }
    }
    $writer.WriteLine((ConvertTo-Json -InputObject $answer -Compress -Depth 4))
}

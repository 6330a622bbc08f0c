# The statements of smbvol scripts, for the coverage report: for each file named on stdin (a
# JSON list of paths), every statement's start line, the function it is in ('' for the script
# itself) and its first line of text; function definitions themselves are left out.
$ErrorActionPreference = 'Stop'
$paths = ConvertFrom-Json -InputObject ([Console]::In.ReadToEnd())
$out = @{}
foreach ($path in $paths) {
    $tokens = $null
    $errors = $null
    $ast = [System.Management.Automation.Language.Parser]::ParseFile($path, [ref]$tokens, [ref]$errors)
    $seen = @{}
    $rows = New-Object -TypeName System.Collections.Generic.List[object]
    $statements = $ast.FindAll({ param($node) $node -is [System.Management.Automation.Language.StatementAst] -and $node -isnot [System.Management.Automation.Language.FunctionDefinitionAst] }, $true)
    foreach ($statement in $statements) {
        $line = $statement.Extent.StartLineNumber
        if ($seen.ContainsKey($line)) {
            continue
        }
        $seen[$line] = $true
        $function = ''
        $parent = $statement.Parent
        while ($null -ne $parent) {
            if ($parent -is [System.Management.Automation.Language.FunctionDefinitionAst]) {
                $function = $parent.Name
                break
            }
            $parent = $parent.Parent
        }
        $text = $statement.Extent.Text.Split([char]10)[0].Trim()
        $rows.Add(@($line, $function, $text))
    }
    $out[[string]$path] = $rows.ToArray()
}
ConvertTo-Json -InputObject $out -Depth 5 -Compress

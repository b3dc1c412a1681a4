# mcp-guard approval dialog for Windows (a Yes/No message box, no extra software).
#
# Wire it in with (one line; mcp-guard passes this string to Windows unchanged, no shell):
#   mcp-guard --approval command --approval-command "powershell -NoProfile -ExecutionPolicy Bypass -File C:\path\to\approve-dialog-windows.ps1" -- SERVER...
#
# mcp-guard writes the request as JSON on stdin (id, server, tool, arguments,
# readable_arguments, rule, reason, expires). Exit 0 approves; anything else declines
# (No, closing the box, an error). mcp-guard ends the process if nobody answers in time.

$ErrorActionPreference = 'Stop'
try {
    [Console]::InputEncoding = [System.Text.Encoding]::UTF8
    $request = [Console]::In.ReadToEnd() | ConvertFrom-Json

    Add-Type -AssemblyName System.Windows.Forms
    $text = "An AI agent wants to make a call that needs your approval.`n`n" +
        "Server:`t$($request.server)`n" +
        "Tool:`t$($request.tool)`n" +
        "Arguments:`t$($request.readable_arguments)`n" +
        "Rule:`t$($request.rule)`n" +
        "Reason:`t$($request.reason)`n`n" +
        "Approval id $($request.id). Approve this call?"

    # An invisible topmost owner, so the box is not hidden behind the client's window.
    $owner = New-Object System.Windows.Forms.Form
    $owner.TopMost = $true
    $owner.ShowInTaskbar = $false
    $answer = [System.Windows.Forms.MessageBox]::Show(
        $owner, $text, 'mcp-guard: approve this call?',
        [System.Windows.Forms.MessageBoxButtons]::YesNo,
        [System.Windows.Forms.MessageBoxIcon]::Warning,
        [System.Windows.Forms.MessageBoxDefaultButton]::Button2)   # "No" is the default
    $owner.Dispose()

    if ($answer -eq [System.Windows.Forms.DialogResult]::Yes) { exit 0 }
    exit 1
} catch {
    [Console]::Error.WriteLine("approve-dialog-windows.ps1: $($_.Exception.Message): not approved")
    exit 2
}

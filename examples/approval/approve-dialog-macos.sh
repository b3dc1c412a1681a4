#!/bin/sh
# mcp-guard approval dialog for macOS (osascript, no extra software).
#
# Wire it in with:
#   mcp-guard --approval command --approval-command '/path/to/approve-dialog-macos.sh' -- SERVER...
#
# mcp-guard writes the request as JSON on stdin (id, server, tool, arguments,
# readable_arguments, rule, reason, expires). Exit 0 approves; anything else declines
# (Deny, Escape, closing the dialog). mcp-guard kills the dialog if nobody answers in time.
#
# The JSON is parsed by JavaScript for Automation (osascript -l JavaScript), which ships with
# macOS, so neither python3 (a stub that offers to install developer tools on a fresh Mac)
# nor jq is needed. The request is passed as an argument, never pasted into the script.
set -u

request=$(cat)

answer=$(osascript -l JavaScript - "$request" <<'JXA'
function run(argv) {
    var r = JSON.parse(argv[0]);
    var app = Application.currentApplication();
    app.includeStandardAdditions = true;
    var text = "An AI agent wants to make a call that needs your approval.\n\n" +
        "Server:  " + r.server + "\n" +
        "Tool:  " + r.tool + "\n" +
        "Arguments:  " + r.readable_arguments + "\n" +
        "Rule:  " + r.rule + "\n" +
        "Reason:  " + r.reason + "\n\n" +
        "Approval id " + r.id + ". Approve this call?";
    try {
        app.activate();
        var result = app.displayDialog(text, {
            withTitle: "mcp-guard: approve this call?",
            buttons: ["Deny", "Approve"],
            defaultButton: "Deny",
            cancelButton: "Deny",
            withIcon: "caution"
        });
        return result.buttonReturned === "Approve" ? "approved" : "denied";
    } catch (e) {
        return "denied"; // Deny / Escape raise "User canceled" (-128)
    }
}
JXA
)

[ "$answer" = "approved" ] && exit 0
exit 1

#!/bin/sh
# mcp-guard approval dialog for Linux desktops: zenity, or kdialog if zenity is missing.
#
# Wire it in with:
#   mcp-guard --approval command --approval-command '/path/to/approve-dialog-linux.sh' -- SERVER...
#
# mcp-guard writes the request as JSON on stdin (id, server, tool, arguments,
# readable_arguments, rule, reason, expires). Exit 0 approves; anything else declines
# (Deny, closing the window, no dialog program, no display). mcp-guard kills the
# dialog if nobody answers in time.
set -u

request=$(cat)

# Format the question with python3 (present on practically every desktop Linux), so no jq is needed.
# $1 selects plain text (zenity --no-markup) or Qt rich text with everything escaped (kdialog).
render() {
    printf '%s' "$request" | python3 -c '
import html, json, sys
r = json.load(sys.stdin)
lines = [
    "An AI agent wants to make a call that needs your approval.",
    "",
    "Server:     " + str(r.get("server")),
    "Tool:       " + str(r.get("tool")),
    "Arguments:  " + str(r.get("readable_arguments")),
    "Rule:       " + str(r.get("rule")),
    "Reason:     " + str(r.get("reason")),
    "",
    "Approval id " + str(r.get("id")) + ". Approve this call?",
]
if sys.argv[1] == "html":
    print("<qt>" + "<br>".join(html.escape(line) for line in lines) + "</qt>")
else:
    print("\n".join(lines))
' "$1"
}

if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
    echo "approve-dialog-linux.sh: no graphical display (DISPLAY/WAYLAND_DISPLAY unset): not approved" >&2
    exit 3
fi

if command -v zenity >/dev/null 2>&1; then
    text=$(render plain) || exit 2
    exec zenity --question --no-markup --no-wrap --default-cancel \
        --title="mcp-guard: approve this call?" \
        --ok-label="Approve" --cancel-label="Deny" \
        --text="$text"
elif command -v kdialog >/dev/null 2>&1; then
    text=$(render html) || exit 2
    exec kdialog --title "mcp-guard: approve this call?" \
        --yes-label "Approve" --no-label "Deny" \
        --warningyesno "$text"
fi

echo "approve-dialog-linux.sh: neither zenity nor kdialog is installed: not approved" >&2
exit 2

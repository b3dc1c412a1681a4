"""Exit codes, one table for the guard and every subcommand.

Scripts branch on these, so each number means one thing everywhere:

====  ===================  ==============================================================
code  name                 meaning
====  ===================  ==============================================================
0     OK                   done; the call would be allowed; no differences
1     REFUSED, DIFFERS,    a call refused, a lock file that differs from the server, or
      FAILED               a task that could not be done (the message on stderr says which)
2     USAGE                wrong usage, or invalid input (a policy, lock or config file)
3     NEEDS_APPROVAL       the call would wait for a person's approval
126   CANNOT_RUN           the server command exists but cannot be started
127   NOT_FOUND            the server command is not found
130   INTERRUPTED          stopped by Ctrl-C (SIGINT), as shells report it
141   OUTPUT_CLOSED        whoever read the output stopped reading (``| head``), as shells report SIGPIPE
====  ===================  ==============================================================
"""

from __future__ import annotations

OK = 0
REFUSED = 1
DIFFERS = 1
FAILED = 1
USAGE = 2
NEEDS_APPROVAL = 3
CANNOT_RUN = 126
NOT_FOUND = 127
INTERRUPTED = 130
OUTPUT_CLOSED = 141

from mcp_guard.cli import main

raise SystemExit(main())

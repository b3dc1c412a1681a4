module mcpguard.test/goreader

go 1.19

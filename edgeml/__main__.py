from edgeml.cli import main

raise SystemExit(main())

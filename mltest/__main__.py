from mltest.cli import main

raise SystemExit(main())

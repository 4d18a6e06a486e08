from mathpix_nb.cli import main

raise SystemExit(main())

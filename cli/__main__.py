import sys

from facegate.main import main

sys.exit(main())

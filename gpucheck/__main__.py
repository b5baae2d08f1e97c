import sys

from gpucheck.run import main

sys.exit(main())

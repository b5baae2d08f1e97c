import sys

from wsovvis.gpucheck.run import main

sys.exit(main())

from mlperf_trt.cli import main

raise SystemExit(main())

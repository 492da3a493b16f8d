"""The service layer: what operators ask of the system (status, history, enqueue, cancel,
retry, suspend/resume, the reconcile loop), shared by the CLI and the API so that both
always agree; the front-ends only parse input and format output."""

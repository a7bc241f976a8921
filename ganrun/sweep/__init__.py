"""What a sweep reports: job dir names (`job_names`), HParams of each run (`hparams`), the summary table at the
sweep root (`summary`), and the Hydra callbacks that drive them (`callbacks`)."""

"""Start the trial template process before anything else is imported, so that it
is warm by the time the head sends the first trial."""

from tune_worker.trial_processes import warm_up_template

warm_up_template()

from tune_worker.main import main  # noqa: E402

main()

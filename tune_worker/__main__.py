"""Start the trial template process before anything else is imported, so that it
is warm by the time the head sends the first trial."""

import os
import sys

from tune_worker.trial_processes import preload_from_command_line, warm_up_template

warm_up_template(preload_from_command_line(sys.argv[1:], os.environ))

from tune_worker.main import main  # noqa: E402

main()

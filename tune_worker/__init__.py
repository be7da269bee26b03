"""The worker daemon: runs trials and streams what they report to the head."""

# Heavy modules most trainables import, loaded once by the template that
# trials are forked from, unless ``tune-worker --preload`` says otherwise.
# Here rather than in trial_processes so the client can read it cheaply.
DEFAULT_PRELOAD = ("numpy", "pandas")

"""Imported last by the trial template process, after the heavy modules.

Moving everything allocated so far out of the garbage collector's reach means
the collector never writes to those pages in a forked trial, so trials keep
sharing them with the template instead of each copying them.
"""

import gc

gc.collect()
gc.freeze()

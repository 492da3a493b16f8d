"""The report publisher: the one writer of the report branch.

Takes finished runs off the store's to-publish feed (store/), renders each (report.py) and
commits it to `refs/heads/reports` of the configuration repository's git directory with git
plumbing only — one long-running `git fast-import`, never a worktree or the user's index:

- one commit per run, a batch of runs per `checkpoint`; each batch starts `from` the branch's
  tip and adds its run directories with `M` commands, so only the trees on the path to each new
  run are written: the cost of a commit does not depend on the length of the history;
- idempotent by run id: a run whose directory is already in the tip tree is skipped (fast-import
  `ls`), and runs leave the feed only after the branch moved (`git update-ref NEW OLD`, a
  compare-and-swap), so a publisher killed mid-batch loses nothing and commits nothing twice;
- push: after each batch, when told where (`--push`, or the `--source` the configuration came
  from; a local checkout's branch stays local by default); when the remote's branch moved (another
  publisher, a force-push) fetch it and replay the unpushed commits on top of it (runs are
  disjoint directories, so a replay re-adds the same trees), then push again;
- retention (`reports: {keep_days: N}` in queues.yaml): day directories older than N days leave
  the tip tree in a commit of their own; history keeps them.

git.py: the git command line and fast-import (git's errors become ReportError); branch.py:
writing commits, retention, the feed; push.py: push and replay; locate.py: where the branch
lives; read.py: reading runs back; service.py: the loop, and the expiry of published records.
"""

from runner.publish.branch import Written
from runner.publish.git import BUILD, current_branch, put
from runner.publish.locate import locate
from runner.publish.push import Publisher
from runner.publish.read import read_latest, read_run
from runner.publish.service import keep_days_of, serve

__all__ = ["BUILD", "Publisher", "Written", "current_branch", "keep_days_of", "locate",
           "put", "read_latest", "read_run", "serve"]

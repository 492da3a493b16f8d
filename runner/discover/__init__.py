"""`runner discover ssh`: hosts that answer SSH, proposed as targets on a branch of the
configuration repository. scan.py: the network (asyncssh); propose.py: pure, what to write;
branch.py: the commit and branch (git plumbing)."""

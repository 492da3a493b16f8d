"""Runs a job on its targets: the engine and its transports (local, ssh, winrm)."""

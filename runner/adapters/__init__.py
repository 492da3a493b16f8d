"""Thin adapters to outside systems that more than one stage shares: Redis URLs and clients
(plain or Sentinel; the store, the broker and the event stream use them) and inotify (the
directory source, the file broker and the file store follow writes with it). Each translates its
library's errors into runner's own."""

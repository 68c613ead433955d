"""The photo organiser room: `facegate photos ...` sorts a folder of photos by person on the device.

`db` (photos.db, separate from the door's store), `walk` (which files a scan looks at), `scan`
(incremental, resumable: one transaction per photo), `cluster` (average linkage with the cannot-link
rule, plain numpy), `organize` (faces -> people with stable ids, door names), `people` (what the user
names, merges and moves), `export` (folders and JSON), `watch` (keep scanning). See docs/photos.md.
"""

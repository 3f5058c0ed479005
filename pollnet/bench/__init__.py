"""`pollnet bench`: `stats` does the arithmetic, `runner` runs rows side by side (each
side a `worker` process, pinned, in a private namespace pair when allowed), `loops` are
the measuring loops, `report` prints, `netns` makes and always removes the namespaces,
`sockperf` speaks sockperf's message format, `echo` is `pollnet echo-server`'s loop."""

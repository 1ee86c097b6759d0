"""The reference system the testbed exercises: the Toolpack-style hosts (`host`) and the
TMedia media-gateway units (`tmedia`). The harness never imports this package; it talks
to the running system only through SIP, the OAM API and container operations."""

"""Real containers for the harness's own tests: Debian's dockerd, a systemd image, a container.

Nothing here is needed on a staging host: there the gateway runs under the host's own systemd
and the harness reaches it through a local (or ssh) command runner. In tests the same driver
runs against a systemd inside a container built here from a Debian root file system, because
no container registry can be reached and the test machine's PID 1 is not systemd.

    engine.DockerEngine     a private dockerd (own socket, data and exec roots, own bridge)
    image.SystemdImage      debootstrap root fs -> `docker import` -> image with a lingering user
    systemd.SystemdContainer  a testcontainers container booting /sbin/init
"""

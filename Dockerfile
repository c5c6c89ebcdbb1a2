# The daemon as a container image. Built from the static binary that
# `make build` writes to bin/, so no base image has to be pulled.
#
#   make image
#   docker run -d --name dockerfaasd -p 8080:8080 \
#     -v /var/run/docker.sock:/var/run/docker.sock \
#     -v dockerfaasd-state:/var/lib/dockerfaasd dockerfaasd:<version>
#
# The daemon reaches replicas by their address on per-function bridge
# networks; running in a container, it finds its own container (hostname,
# or SELF_CONTAINER) and joins each function network itself. Function
# secrets are copied into replicas through the Docker API, so no host path
# is assumed.
FROM scratch
COPY bin/dockerfaasd /dockerfaasd
ENV STATE_DIR=/var/lib/dockerfaasd
VOLUME ["/var/lib/dockerfaasd"]
EXPOSE 8080
ENTRYPOINT ["/dockerfaasd"]

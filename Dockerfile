# The daemon as a container image. Built from the static binary that
# `make build` writes to bin/, so no base image has to be pulled.
#
#   make image
#   docker run -d --name dockerfaasd -p 8080:8080 \
#     -v /var/run/docker.sock:/var/run/docker.sock \
#     -v dockerfaasd-state:/var/lib/dockerfaasd dockerfaasd:<version>
#
# Note: the daemon reaches function replicas by their IP on per-function
# bridge networks. Run it with --network host until joining those networks
# from inside a container is supported.
FROM scratch
COPY bin/dockerfaasd /dockerfaasd
ENV STATE_DIR=/var/lib/dockerfaasd
VOLUME ["/var/lib/dockerfaasd"]
EXPOSE 8080
ENTRYPOINT ["/dockerfaasd"]

# Operations: moad under systemd (socket activation, sd_notify, watchdog,
# reload under load, unit files) and the installed tree.
moa_integration_test(ops)

# Configuration loader (daemon/config.c, daemon/yaml-tree.c).
moa_unit_test(test-config test-config.c)

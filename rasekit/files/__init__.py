"""Where the kit keeps files (`paths`, set by RASEKIT_* variables) and how it writes them (`atomic`: whole
or not at all). At the bottom of the package: data, stages and runs all use it, and it uses none of them."""

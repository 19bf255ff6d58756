//! The `<inject>` section: tag/time/hostname/worker_id keys added to records before formatting.

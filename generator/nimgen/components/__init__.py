"""Platform components: the model workload, node pools, storage, secrets, monitoring, add-ons."""

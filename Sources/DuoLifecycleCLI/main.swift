import ArgumentParser; import GRDB; import Yams; import Prometheus; import ServiceLifecycle; import Kafka; import DuoAdmin; import DuoEmulator; print("x")

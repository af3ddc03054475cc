import Kafka; print("x")

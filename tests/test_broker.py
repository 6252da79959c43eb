from kombu import Connection

from console import broker


def test_the_embedded_broker_writes_messages_atomically_and_round_trips_them(tmp_path):
    broker.install()
    folder = str(tmp_path)
    options = {"data_folder_in": folder, "data_folder_out": folder, "store_processed": False,
               "control_folder": str(tmp_path / "control")}  # fmt: skip
    with Connection("filesystem://", transport_options=options) as connection:
        assert isinstance(connection.transport, broker.Transport)
        queue = connection.SimpleQueue("nudges")
        queue.put({"record_id": 42})
        assert [path.name.endswith(".nudges.msg") for path in tmp_path.glob("*.msg")] == [True]
        message = queue.get(timeout=1)
        assert message.payload == {"record_id": 42}
        message.ack()
        queue.close()

pub fn error_response(
    _r: &kafka_protocol::messages::RequestKind,
    _v: i16,
    _e: i16,
) -> kafka_protocol::messages::ResponseKind {
    todo!()
}

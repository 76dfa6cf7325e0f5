//! The event contract for consumers of the topic: a JSON Schema per event
//! type and version, and the AsyncAPI document of the topic, both generated
//! from the types in this crate so that they cannot say something the
//! producers do not do.
//!
//! Schemas describe what is *serialized* (the wire), in JSON Schema draft-07
//! (what AsyncAPI 2.6 embeds), with every subschema inlined so that each file
//! stands alone. A payload's schema refuses fields it does not name: a new
//! field is a new version of the event (and an upcaster), never a silent
//! change.

use schemars::generate::{Contract, SchemaSettings};
use schemars::JsonSchema;
use serde_json::{json, Map, Value};

use crate::{
    AccountEvent, ConcertEvent, CouponEvent, Envelope, EventKind, GuildEvent, MessageEvent,
    OrderEvent, PostEvent, ProductEvent, RoomEvent, ScheduleEvent,
};

/// The JSON Schema of one event type's payload at its current version.
#[derive(Debug, Clone)]
pub struct EventSchema {
    pub aggregate_type: &'static str,
    pub event_type: String,
    pub event_version: &'static str,
    pub schema: Value,
}

impl EventSchema {
    /// Where it is kept under `docs/`: `schemas/<aggregate>/<Type>.v<version>.json`.
    pub fn path(&self) -> String {
        format!(
            "schemas/{}/{}.v{}.json",
            self.aggregate_type, self.event_type, self.event_version
        )
    }
}

fn settings() -> SchemaSettings {
    SchemaSettings::draft07().with(|s| {
        s.inline_subschemas = true;
        s.contract = Contract::Serialize;
    })
}

fn root_schema<T: JsonSchema>() -> Value {
    settings()
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value()
}

/// The schema of the envelope every message on the topic is.
pub fn envelope_schema() -> Value {
    let mut schema = root_schema::<Envelope>();
    if let Some(o) = schema.as_object_mut() {
        o.insert("$id".into(), json!("urn:tessera:envelope"));
    }
    schema
}

/// One schema per variant of `E`, split out of the enum's `oneOf` by the
/// `type` tag each variant carries.
fn variants<E: EventKind + JsonSchema>() -> Vec<EventSchema> {
    let version = E::EVENT_VERSION;
    let root = root_schema::<E>();
    let meta = root.get("$schema").cloned();
    let variants = root
        .get("oneOf")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out = Vec::with_capacity(variants.len());
    for variant in variants {
        let Value::Object(mut variant) = variant else {
            continue;
        };
        let Some(event_type) = variant
            .get("properties")
            .and_then(|p| p.get("type"))
            .and_then(|t| t.get("const"))
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            continue;
        };
        variant.insert("additionalProperties".into(), Value::Bool(false));
        let mut schema = Map::new();
        if let Some(meta) = &meta {
            schema.insert("$schema".into(), meta.clone());
        }
        schema.insert(
            "$id".into(),
            json!(format!(
                "urn:tessera:event:{}:{event_type}:{version}",
                E::AGGREGATE_TYPE
            )),
        );
        schema.insert("title".into(), json!(event_type));
        schema.extend(variant);
        out.push(EventSchema {
            aggregate_type: E::AGGREGATE_TYPE,
            event_type,
            event_version: version,
            schema: Value::Object(schema),
        });
    }
    out
}

/// Every event type's schema, at the version its enum writes now.
pub fn event_schemas() -> Vec<EventSchema> {
    [
        variants::<AccountEvent>(),
        variants::<GuildEvent>(),
        variants::<PostEvent>(),
        variants::<ConcertEvent>(),
        variants::<ScheduleEvent>(),
        variants::<CouponEvent>(),
        variants::<ProductEvent>(),
        variants::<OrderEvent>(),
        variants::<MessageEvent>(),
        variants::<RoomEvent>(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The AsyncAPI 2.6 document of `topic`: each message is an envelope, keyed
/// by its aggregate id, with the payload of its event type and version.
pub fn asyncapi(topic: &str) -> Value {
    let mut messages = Map::new();
    let mut schemas = Map::new();
    let mut refs = Vec::new();
    schemas.insert("Envelope".into(), strip_meta(envelope_schema()));
    for e in event_schemas() {
        let name = format!("{}V{}", e.event_type, e.event_version.replace('.', "_"));
        schemas.insert(name.clone(), strip_meta(e.schema.clone()));
        messages.insert(
            name.clone(),
            json!({
                "name": e.event_type,
                "title": format!("{} {}", e.event_type, e.event_version),
                "summary": format!("`{}` of a `{}` aggregate, payload version {}", e.event_type, e.aggregate_type, e.event_version),
                "contentType": "application/json",
                "headers": {
                    "type": "object",
                    "properties": {
                        "event_type": { "type": "string", "const": e.event_type },
                        "aggregate_type": { "type": "string", "const": e.aggregate_type },
                        "tessera-epoch": {
                            "type": "string",
                            "description": "the topic's epoch: a new one means the whole log is published again (read the partition again from its start, skipping what you have)"
                        },
                        "traceparent": {
                            "type": "string",
                            "description": "the W3C trace context of the request that caused the event (the same as `metadata.traceparent`): continue its trace"
                        }
                    }
                },
                "bindings": {
                    "kafka": {
                        "key": { "type": "string", "description": "the aggregate id: one aggregate's events stay in order on one partition" },
                        "bindingVersion": "0.4.0"
                    }
                },
                "payload": {
                    "allOf": [
                        { "$ref": "#/components/schemas/Envelope" },
                        {
                            "type": "object",
                            "properties": {
                                "aggregate_type": { "const": e.aggregate_type },
                                "event_type": { "const": e.event_type },
                                "event_version": { "const": e.event_version },
                                "payload": { "$ref": format!("#/components/schemas/{name}") }
                            }
                        }
                    ]
                }
            }),
        );
        refs.push(json!({ "$ref": format!("#/components/messages/{name}") }));
    }
    json!({
        "asyncapi": "2.6.0",
        "id": "urn:tessera:events",
        "info": {
            "title": "Tessera events",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every event committed to Tessera's event log, published by the relay in commit order. At least once: a consumer skips what it has by `(aggregate_id, sequence)`; `sequence` has no gaps within an aggregate. Payloads are at the current version of their event type (older stored versions are upcast before they are published)."
        },
        "defaultContentType": "application/json",
        "channels": {
            topic: {
                "description": "The events topic (TESSERA_KAFKA_TOPIC), keyed by aggregate id.",
                "subscribe": {
                    "operationId": "consumeEvents",
                    "summary": "Committed events, in commit order per partition",
                    "message": { "oneOf": refs }
                }
            }
        },
        "components": {
            "messages": messages,
            "schemas": schemas
        }
    })
}

/// `v` with every object's keys in order. serde_json keeps insertion order
/// when another crate of the build turns on its `preserve_order`, and the
/// files must read the same whichever crates are built together.
fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(o) => {
            let mut keys: Vec<_> = o.keys().collect();
            keys.sort_unstable();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&o[k])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// An embedded schema names no meta-schema of its own.
fn strip_meta(mut schema: Value) -> Value {
    if let Some(o) = schema.as_object_mut() {
        o.remove("$schema");
    }
    schema
}

/// The files `docs/` keeps: `asyncapi.json` (for the default topic), the
/// envelope and every event schema, each as pretty JSON with a final newline.
pub fn files(topic: &str) -> Vec<(String, String)> {
    let pretty = |v: &Value| {
        let mut s = serde_json::to_string_pretty(&sorted(v)).unwrap_or_default();
        s.push('\n');
        s
    };
    let mut out = vec![
        ("asyncapi.json".to_owned(), pretty(&asyncapi(topic))),
        (
            "schemas/envelope.json".to_owned(),
            pretty(&envelope_schema()),
        ),
    ];
    out.extend(
        event_schemas()
            .iter()
            .map(|e| (e.path(), pretty(&e.schema))),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_has_one_schema() {
        let schemas = event_schemas();
        let mut names: Vec<_> = schemas.iter().map(|e| e.event_type.as_str()).collect();
        names.sort_unstable();
        let mut expected: Vec<_> = crate::event_types().collect();
        expected.sort_unstable();
        assert_eq!(names, expected);
    }

    #[test]
    fn a_payload_schema_names_its_fields_and_refuses_others() {
        let paid = event_schemas()
            .into_iter()
            .find(|e| e.event_type == "OrderPaid")
            .expect("OrderPaid");
        assert_eq!(paid.event_version, "1.1");
        let s = &paid.schema;
        assert_eq!(s["additionalProperties"], false);
        assert_eq!(s["properties"]["type"]["const"], "OrderPaid");
        let required: Vec<_> = s["required"].as_array().unwrap().iter().collect();
        assert!(required.contains(&&json!("seller_ids")), "{s}");
        assert!(
            s.get("$defs").is_none() && s.get("definitions").is_none(),
            "{s}"
        );
    }
}

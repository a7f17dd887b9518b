//! This node's own events: its containers' and its images', with the attributes dockerd
//! gives them.

use covey_images::reference::familiar;
use covey_images::{ImageEvent, Reference};

use super::{Event, Type};
use crate::containers::Record;

/// A container's event: its labels, image and name as attributes, as dockerd's
/// `LogContainerEventWithAttributes` (labels first, so that neither can hide the name).
pub fn container_event(record: &Record, action: &'static str) -> Event {
    let mut event = Event::new(Type::Container, action, record.id.clone());
    if let Some(labels) = record.request.get("Labels").and_then(|l| l.as_object()) {
        for (k, v) in labels {
            if let Some(v) = v.as_str() {
                event.attributes.insert(k.clone(), v.to_string());
            }
        }
    }
    event
        .with("image", record.image.clone())
        .with("name", record.name.clone())
}

/// An image store change as dockerd reports it: a pull by its familiar reference, the
/// rest by image ID.
pub fn image_event(change: ImageEvent) -> Event {
    match change {
        ImageEvent::Pulled { reference, .. } => {
            let name = reference.familiar_name();
            Event::new(Type::Image, "pull", pulled_as(&reference)).with("name", name)
        }
        ImageEvent::Loaded { image, names } => {
            let name = names
                .first()
                .map(|n| familiar(n))
                .unwrap_or_else(|| image.to_string());
            Event::new(Type::Image, "load", image.to_string()).with("name", name)
        }
        // dockerd names the image ID twice; the name untagged says more.
        ImageEvent::Untagged { name, image } => {
            Event::new(Type::Image, "untag", image.to_string()).with("name", familiar(&name))
        }
        ImageEvent::Deleted { image } => {
            Event::new(Type::Image, "delete", image.to_string()).with("name", image.to_string())
        }
    }
}

/// `busybox:latest`, or `busybox@sha256:…` for a pull by digest.
fn pulled_as(reference: &Reference) -> String {
    reference
        .familiar_tagged()
        .or_else(|| reference.familiar_digested())
        .unwrap_or_else(|| reference.familiar_name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_named_as_dockerd_names_them() {
        let reference: Reference = "docker.io/library/busybox:1.36".parse().expect("ref");
        let digest: covey_images::Digest = format!("sha256:{}", "a".repeat(64))
            .parse()
            .expect("digest");
        let pulled = image_event(ImageEvent::Pulled {
            reference,
            image: digest.clone(),
        });
        assert_eq!(
            (pulled.action, pulled.actor.as_str()),
            ("pull", "busybox:1.36")
        );
        assert_eq!(pulled.attribute("name"), "busybox");
        let untagged = image_event(ImageEvent::Untagged {
            name: "registry.local:5000/app:v1".into(),
            image: digest.clone(),
        });
        assert_eq!(untagged.actor, digest.to_string());
        assert_eq!(untagged.attribute("name"), "registry.local:5000/app:v1");
        assert_eq!(untagged.kind.scope(), "local");
    }
}

//! Shows on the bus what the owners report ([`Publish`]): exports and removes
//! Link and Program objects, emits PropertiesChanged, ChainChanged and
//! ForeignProgramDetected. The only place that turns views into paths.

use std::collections::HashMap;
use std::sync::Arc;

use zbus::object_server::SignalEmitter;
use zbus::{Connection, OwnedObjectPath, Variant};

use super::link::{LinkIface, INTERFACE};
use super::objects::Objects;
use super::program::ProgramIface;
use super::{link_path, program_path};
use crate::engine::MemberId;
use crate::iface::{BoxFuture, Handle, IfaceProperty, IfaceView, ProgramView, Publish};
use crate::intake::Intake;
use crate::request::Front;

pub struct Publisher {
    connection: Connection,
    objects: Arc<Objects>,
    front: Arc<Front>,
    intake: Arc<Intake>,
}

impl Publisher {
    pub fn new(objects: Arc<Objects>, front: Arc<Front>, intake: Arc<Intake>) -> Arc<Publisher> {
        Arc::new(Publisher { connection: objects.connection().clone(), objects, front, intake })
    }

    fn programs(view: &IfaceView) -> Vec<OwnedObjectPath> {
        view.programs.iter().map(|id| program_path(view.index, *id)).collect()
    }

    async fn emit_properties(&self, view: &IfaceView, changed: &[IfaceProperty]) {
        let mut values: HashMap<&str, Variant<'_>> = HashMap::new();
        for property in changed {
            let (name, value) = match property {
                IfaceProperty::Name => ("Name", Variant::from(view.name.clone())),
                IfaceProperty::Mode => ("Mode", Variant::from(view.mode.clone())),
                IfaceProperty::Generation => ("Generation", Variant::from(view.generation)),
                IfaceProperty::Programs => ("Programs", Variant::from(Publisher::programs(view))),
                IfaceProperty::KernelProgramId => ("KernelProgramId", Variant::from(view.kernel_program_id)),
                IfaceProperty::ForeignProgramId => ("ForeignProgramId", Variant::from(view.foreign_program_id)),
                IfaceProperty::Counting => ("Counting", Variant::from(view.counting)),
                IfaceProperty::Linking => ("Linking", Variant::from(super::link::linking(view))),
                IfaceProperty::Hold => ("Hold", Variant::from(view.hold)),
            };
            values.insert(name, value);
        }
        let body = (INTERFACE, values, Vec::<&str>::new());
        let path = link_path(view.index);
        if let Err(e) = self
            .connection
            .emit_signal(None::<&str>, path.as_ref(), "org.freedesktop.DBus.Properties", "PropertiesChanged", &body)
            .await
        {
            tracing::warn!("cannot emit PropertiesChanged: {e}");
        }
    }

    fn emitter(&self, ifindex: u32) -> SignalEmitter<'static> {
        SignalEmitter::from_parts(self.connection.clone(), link_path(ifindex).into())
    }
}

impl Publish for Publisher {
    fn interface_added<'a>(&'a self, handle: &'a Handle) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let iface = LinkIface { handle: handle.clone(), front: self.front.clone(), intake: self.intake.clone() };
            if let Err(e) = self.objects.export(link_path(handle.ifindex), iface).await {
                tracing::error!(ifindex = handle.ifindex, "cannot export the link object: {e}");
            }
        })
    }

    fn interface_gone(&self, ifindex: u32) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let _ = self.objects.unexport::<LinkIface>(link_path(ifindex)).await;
        })
    }

    fn program_added<'a>(&'a self, handle: &'a Handle, view: ProgramView) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let (ifindex, id) = (view.ifindex, view.id);
            let iface = ProgramIface { view, handle: handle.clone(), front: self.front.clone() };
            if let Err(e) = self.objects.export(program_path(ifindex, id), iface).await {
                tracing::error!(ifindex, id, "cannot export the program object: {e}");
            }
        })
    }

    fn program_removed(&self, ifindex: u32, id: MemberId) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let _ = self.objects.unexport::<ProgramIface>(program_path(ifindex, id)).await;
        })
    }

    fn chain_changed<'a>(&'a self, view: &'a IfaceView) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.emit_properties(view, &IfaceProperty::CHAIN).await;
            let emitter = self.emitter(view.index);
            if let Err(e) = LinkIface::emit_chain_changed(&emitter, view.generation, Publisher::programs(view)).await {
                tracing::warn!("cannot emit ChainChanged: {e}");
            }
        })
    }

    fn properties_changed<'a>(&'a self, view: &'a IfaceView, changed: &'a [IfaceProperty]) -> BoxFuture<'a, ()> {
        Box::pin(self.emit_properties(view, changed))
    }

    fn foreign_detected<'a>(&'a self, view: &'a IfaceView, id: u32) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let emitter = self.emitter(view.index);
            if let Err(e) = LinkIface::emit_foreign_program_detected(&emitter, id).await {
                tracing::warn!("cannot emit ForeignProgramDetected: {e}");
            }
        })
    }
}

//! Dry runs: the chain a change would produce, linked and verified with the
//! same checks and refusals as the change itself, reported and dropped —
//! nothing is attached, recorded, pinned or counted against a limit; and the
//! report of the running chain.

use super::*;
use crate::engine::ChainReport;

impl Owner {
    /// What adding (or replacing with) `program` would make of the chain.
    pub(super) async fn dry_run(
        &mut self,
        program: LoadedProgram,
        request: AddRequest,
        caller: Caller,
    ) -> Result<ChainReport, ServiceError> {
        let replaced = self.replaced_by(&request, &caller);
        self.check_add(&program, &request)?;
        // The limits refuse what they would refuse for the change; the charge goes again at once.
        let new_programs = usize::from(replaced.is_none());
        let charge = Charge::new(program.maps.iter().map(|m| m.bytes).sum(), request.snapshot);
        self.cx.limits.reserve_program(caller.uid, new_programs, charge)?;
        let (options, expected) = (add_options(&request, &caller), request.expected_generation);
        let planned = self
            .with_chain(move |chain| {
                check_generation(chain, expected)?;
                match replaced {
                    Some(old) => chain.plan_replace(old, program, &options),
                    None => chain.plan_add(program, &options),
                }
            })
            .await;
        self.cx.limits.release_program(caller.uid, new_programs, charge);
        tracing::debug!(%caller, interface = %self.ifname(), ok = matches!(planned, Ok(Ok(_))), "dry run");
        Ok(planned??)
    }

    /// The report of the running chain.
    pub(super) async fn explain(&self) -> Result<Option<ChainReport>, ServiceError> {
        self.with_chain(|chain| chain.report()).await
    }
}

/**
 * kvm-remapped: a VMM backs guest memory with a driver's VM_PFNMAP mapping (the driver
 * remap_pfn_range()s a RAM frame it allocated into the VMM process). The vCPU's EPT
 * violation resolves the gfn through hva_to_pfn_remapped() (R-CALL-2: follow_pfnmap on
 * 6.12+, follow_pte/follow_pfn before; from 6.13 no page reference, before it a
 * get_page_unless_zero on refcounted pfns) and installs an sPTE. The driver then zaps its
 * mapping (unmap_mapping_range), frees the frame, and another process's fault reuses it;
 * the guest keeps writing gpa 0.
 *
 * - fixed: the VM has its MMU notifier (as every real VM does): the zap's
 *   invalidate_range_start reaches kvm_mmu_notifier_invalidate_range_start, which zaps the
 *   sPTE, and the fault path's mmu_invalidate_retry discards a pfn looked up across the
 *   invalidation. A guest access after the zap faults again and finds no host PTE (the
 *   driver's VMA has no ->fault): -EFAULT, not the freed frame. SAFE.
 * - unsafe: a VM without its MMU notifier (model knob kvm_create_vm(mm, {mmu_notifier:
 *   false}); the remapped path relies on the notifier, R-CALL-2): nothing removes the
 *   sPTE, and the guest writes the frame after it was freed and reused. pfnsan reports
 *   the sPTE install of a pfn whose lookup window had ended (stale-pfn).
 */
import { defineScenario, type Op } from '../src/index.js';
import {
  kvm_create_vm,
  kvm_set_memory_region,
  kvm_vcpu_create,
  type kvm,
  type kvm_vcpu,
} from '../src/kernel/virt/kvm/kvm_main.js';
import { kvm_vcpu_guest_access } from '../src/kernel/arch/x86/kvm/mmu/mmu.js';
import { phys_write } from '../src/kernel/mm/sparse.js';
import { errname } from '../src/kernel/include/linux/errno.js';
import {
  VICTIM_BYTE,
  hex,
  pfnRaceSetup,
  userFrame,
  victimThread,
  zapperThread,
  type PfnRace,
} from './mm-common.js';

/** What the guest writes. */
const GUEST_BYTE = 0x9e;

interface State extends PfnRace {
  readonly vm: kvm;
  readonly vcpu: kvm_vcpu;
  /** Pfns the guest's accesses reached. */
  readonly reached: number[];
}

export const kvmRemapped = defineScenario<State>({
  name: 'kvm-remapped',
  story: 'kvm-remapped',
  description:
    "guest memory backed by a driver's VM_PFNMAP mapping: the driver zaps and frees the frame while the vCPU keeps accessing it, with and without KVM's MMU notifier",
  machine: { ram: 2 ** 30, devices: [{ bdf: '0000:01:00.0', bars: [{ size: 0x1000 }] }] },
  setup(ctx) {
    const race = pfnRaceSetup(ctx, 'remap');
    const vm = race.app.run(
      kvm_create_vm(race.app.task.mm!, { mmu_notifier: ctx.variant !== 'unsafe' }),
    );
    const r = kvm_set_memory_region(vm, {
      slot: 0,
      flags: 0,
      guest_phys_addr: 0,
      memory_size: 4096,
      userspace_addr: race.uaddr,
    });
    if (r) throw new Error(`KVM_SET_USER_MEMORY_REGION failed: ${errname(r)}`);
    ctx.note(
      `kvm${vm.id}: gpa 0x0 -> hva ${hex(race.uaddr)} (demo_buf pfn ${hex(race.frame)}), ${vm.has_mmu_notifier ? 'with' : 'WITHOUT'} its MMU notifier`,
    );
    return { ...race, vm, vcpu: kvm_vcpu_create(vm), reached: [] };
  },
  threads: {
    vcpu: {
      kind: 'cpu',
      as: (_ctx, s) => s.app,
      *run(ctx, s): Op<void> {
        for (let i = 0; i < 2; i++) {
          const r = yield* kvm_vcpu_guest_access(s.vcpu, 0, 'write');
          if (r.kind === 'ok') {
            // The guest's store lands in the frame the sPTE names.
            phys_write(r.pfn * 4096, new Uint8Array([GUEST_BYTE]));
            s.reached.push(r.pfn);
            ctx.note(`guest write of gpa 0x0 reached pfn ${hex(r.pfn)} (${r.faults} fault(s))`);
          } else {
            ctx.note(
              `guest write of gpa 0x0: ${r.kind === 'error' ? errname(r.err) : 'emulated'} (${r.faults} fault(s))`,
            );
          }
        }
      },
    },
    zapper: zapperThread<State>(),
    victim: victimThread<State>(),
  },
  check(_ctx, s) {
    const v = userFrame(s.victim.task.mm!, s.vaddr, 1);
    if (v && v.bytes[0] === GUEST_BYTE)
      return `the guest wrote into victim's anon page (pfn ${hex(v.pfn)}, the driver's freed frame)`;
    if (v && v.bytes[0] !== VICTIM_BYTE) return "victim's page lost its contents";
    const spte = s.vm.arch.sptes.get(0);
    if (s.freed && spte && spte.pfn === s.frame)
      return `kvm${s.vm.id} still has an sPTE for gfn 0x0 -> pfn ${hex(s.frame)}, which the driver freed`;
    return null;
  },
  variants: {
    unsafe: {
      description: 'the VM has no MMU notifier: the sPTE outlives the zap and the free',
      expect: { default: 'stale-pfn' },
    },
    fixed: {
      description: "KVM's MMU notifier zaps the sPTE when the driver zaps its mapping",
      expect: { default: 'SAFE' },
    },
  },
});

export default kvmRemapped;

/**
 * Anonymous inodes: the files of perf events, io_uring instances and the like, which
 * exist only as open files ("anon_inode:[perf_event]" in /proc/<pid>/maps). Files made
 * with anon_inode_getfile share one inode per kernel; anon_inode_create_getfile makes a
 * fresh inode per file (the "secure" variant io_uring uses).
 *
 * @kernel fs/anon_inodes.c:anon_inode_getfile, anon_inode_create_getfile (all versions;
 *   the create variant v6.6+)
 */
import type { file, file_operations, inode, super_block } from '../include/linux/mm_types.js';
import { currentKernel } from '../kernel/kernel.js';
import { alloc_file, ihold, new_inode } from './inode.js';

function anon_inode_sb(): super_block {
  const k = currentKernel();
  return ((k.sub.anon_inode_sb as super_block | undefined) ??= {
    s_type: 'anon_inodefs',
    s_nowriteback: true,
  });
}

/** The shared anon_inode_inode of the kernel instance. */
function anon_inode_inode(): inode {
  const k = currentKernel();
  return ((k.sub.anon_inode_inode as inode | undefined) ??= new_inode(anon_inode_sb(), 'anon'));
}

/**
 * anon_inode_getfile(name, fops, priv, flags): a file on the shared anonymous inode,
 * holding a reference to it, with private_data = priv.
 * @kernel fs/anon_inodes.c:anon_inode_getfile (all versions)
 * Return: the file.
 */
export function anon_inode_getfile(
  name: string,
  fops: file_operations,
  priv: unknown,
  flags: number,
): file {
  const i = anon_inode_inode();
  ihold(i);
  const f = alloc_file(`anon_inode:${name}`, flags, i, fops);
  f.private_data = priv;
  return f;
}

/**
 * anon_inode_create_getfile(name, fops, priv, flags, context_inode): as
 * anon_inode_getfile with an inode of its own.
 * @kernel fs/anon_inodes.c:anon_inode_create_getfile (v6.6+; anon_inode_getfile_secure
 *   v5.12+)
 * Return: the file.
 */
export function anon_inode_create_getfile(
  name: string,
  fops: file_operations,
  priv: unknown,
  flags: number,
): file {
  const i = new_inode(anon_inode_sb(), 'anon');
  const f = alloc_file(`anon_inode:${name}`, flags, i, fops);
  f.private_data = priv;
  return f;
}

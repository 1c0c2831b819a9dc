/**
 * Members each in at most one group, with a value each, indexed both ways: which group a member
 * is in, and each group's members. A change answers the groups it touched, so an index of
 * watched objects (a slice in its revision, a Service in its function, a stream in its function)
 * updates only what one object concerns.
 */
export class Grouping<Group, Member, Value> {
  readonly #groupOf = new Map<Member, Group>();
  readonly #members = new Map<Group, Map<Member, Value>>();

  /**
   * Puts `member` in `entry.group` with `entry.value`, or with `undefined` takes it out. Answers
   * the groups touched: the one it left, the one it is in — none when nothing changed.
   */
  set(member: Member, entry: { readonly group: Group; readonly value: Value } | undefined): Group[] {
    const previous = this.#groupOf.get(member);
    const touched: Group[] = [];
    if (previous !== undefined && (entry === undefined || previous !== entry.group)) {
      const members = this.#members.get(previous);
      members?.delete(member);
      if (members?.size === 0) this.#members.delete(previous);
      this.#groupOf.delete(member);
      touched.push(previous);
    }
    if (entry !== undefined) {
      let members = this.#members.get(entry.group);
      if (members === undefined) {
        members = new Map();
        this.#members.set(entry.group, members);
      }
      if (members.has(member) && Object.is(members.get(member), entry.value)) return touched;
      members.set(member, entry.value);
      this.#groupOf.set(member, entry.group);
      touched.push(entry.group);
    }
    return touched;
  }

  groupOf(member: Member): Group | undefined {
    return this.#groupOf.get(member);
  }

  /** A group's members and their values; undefined for a group without members. */
  members(group: Group): ReadonlyMap<Member, Value> | undefined {
    return this.#members.get(group);
  }

  groups(): IterableIterator<Group> {
    return this.#members.keys();
  }

  /** How many members, over all groups. */
  get size(): number {
    return this.#groupOf.size;
  }
}

/**
 * One agent's account: cash, positions at average cost, realised P&L and fees, and the ledger of
 * fills it was built from. Orders are market orders filled in full at the current price plus a fee;
 * there is no short selling and no borrowing, so a sell larger than the holding or a buy costing
 * more than the cash is refused with the numbers, and a refused order changes nothing.
 */

export type Side = 'buy' | 'sell';

export type Action = { kind: 'hold' } | { kind: Side; asset: string; size: number };

export interface Fill {
  atMs: number;
  asset: string;
  side: Side;
  size: number;
  price: number;
  fee: number;
  /** Realised P&L of a sell (price - average cost) * size, before its fee; 0 for a buy. */
  realised: number;
}

export interface Position {
  size: number;
  avgCost: number;
}

const money = (x: number) => x.toFixed(2);

export class Account {
  cash: number;
  realised = 0;
  fees = 0;
  readonly positions = new Map<string, Position>();
  readonly fills: Fill[] = [];

  constructor(readonly initialCash: number) {
    this.cash = initialCash;
  }

  /** Why the order cannot be filled at `price`, or null when it can. */
  refusal(side: Side, asset: string, size: number, price: number, feeRate: number): string | null {
    if (!Number.isFinite(size) || size <= 0) return `size must be a positive finite number, got ${size}`;
    if (side === 'buy') {
      const cost = size * price * (1 + feeRate);
      if (cost > this.cash + 1e-9)
        return `insufficient cash: buying ${size} ${asset} at ${money(price)} costs ${money(cost)} with fees, cash is ${money(this.cash)}`;
      return null;
    }
    const held = this.positions.get(asset)?.size ?? 0;
    if (size > held + 1e-12) return `cannot sell ${size} ${asset}: holding ${held} (no short selling)`;
    return null;
  }

  /** Applies a fill the caller has checked with `refusal`. */
  apply(fill: Fill): void {
    const pos = this.positions.get(fill.asset) ?? { size: 0, avgCost: 0 };
    const value = fill.size * fill.price;
    if (fill.side === 'buy') {
      pos.avgCost = (pos.avgCost * pos.size + value) / (pos.size + fill.size);
      pos.size += fill.size;
      this.cash -= value + fill.fee;
    } else {
      pos.size -= fill.size;
      this.cash += value - fill.fee;
      this.realised += fill.realised;
    }
    this.fees += fill.fee;
    // A sale of the whole holding leaves float dust; treat it as flat.
    if (pos.size <= 1e-12) this.positions.delete(fill.asset);
    else this.positions.set(fill.asset, pos);
    this.fills.push(fill);
  }

  /** Builds the fill an order would make, without applying it. */
  fillFor(atMs: number, side: Side, asset: string, size: number, price: number, feeRate: number): Fill {
    const pos = this.positions.get(asset);
    const realised = side === 'sell' && pos ? (price - pos.avgCost) * size : 0;
    return { atMs, asset, side, size, price, fee: size * price * feeRate, realised };
  }

  /** Cash and holdings as they were at `ms`, rebuilt from the ledger. */
  holdingsAt(ms: number): { cash: number; sizes: Map<string, number> } {
    let cash = this.initialCash;
    const sizes = new Map<string, number>();
    for (const f of this.fills) {
      if (f.atMs > ms) break;
      const sign = f.side === 'buy' ? 1 : -1;
      cash -= sign * f.size * f.price + f.fee;
      sizes.set(f.asset, (sizes.get(f.asset) ?? 0) + sign * f.size);
    }
    return { cash, sizes };
  }
}

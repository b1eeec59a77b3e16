import { Rng } from '../../util/rng.js';
import { capitalize, pseudoName } from './words.js';

/** A needle wording: the sentence hidden in the context, the question, and the answer (the sentence restated). */
export interface PlaceWording {
  needle: (place: string, activity: string) => string;
  question: (place: string) => string;
}

const thing = (adj: string): PlaceWording => ({
  needle: (p, a) => `The ${adj} thing to do in ${p} is ${a}.`,
  question: (p) => `What is the ${adj} thing to do in ${p}?`,
});

/** Wordings used in training. */
export const TRAIN_PLACE_WORDINGS: readonly PlaceWording[] = [
  thing('best'),
  thing('most fun'),
  thing('nicest'),
  thing('greatest'),
  thing('most popular'),
  thing('cheapest'),
  {
    needle: (p, a) => `My favorite thing to do in ${p} is ${a}.`,
    question: (p) => `What is my favorite thing to do in ${p}?`,
  },
  {
    needle: (p, a) => `In ${p}, the best thing to do is ${a}.`,
    question: (p) => `What is the best thing to do in ${p}?`,
  },
];

/** Wordings kept for evaluation only. */
export const HELD_OUT_PLACE_WORDINGS: readonly PlaceWording[] = [
  thing('most relaxing'),
  {
    needle: (p, a) => `Everyone agrees that the best thing to do in ${p} is ${a}.`,
    question: (p) => `What is the best thing to do in ${p}?`,
  },
];

/** Places for training needles (San Francisco is never among them). */
export const TRAIN_PLACES: readonly string[] = [
  'Paris',
  'London',
  'Tokyo',
  'Berlin',
  'Madrid',
  'Rome',
  'Boston',
  'Chicago',
  'Seattle',
  'Denver',
  'Austin',
  'Miami',
  'Toronto',
  'Vancouver',
  'Sydney',
  'Melbourne',
  'Dublin',
  'Lisbon',
  'Prague',
  'Vienna',
  'Budapest',
  'Warsaw',
  'Oslo',
  'Stockholm',
  'Helsinki',
  'Copenhagen',
  'Amsterdam',
  'Brussels',
  'Zurich',
  'Geneva',
  'Munich',
  'Hamburg',
  'Milan',
  'Naples',
  'Venice',
  'Florence',
  'Athens',
  'Istanbul',
  'Cairo',
  'Nairobi',
  'Lagos',
  'Cape Town',
  'Mumbai',
  'Delhi',
  'Bangkok',
  'Hanoi',
  'Seoul',
  'Beijing',
  'Shanghai',
  'Hong Kong',
  'Singapore',
  'Jakarta',
  'Manila',
  'Lima',
  'Bogota',
  'Santiago',
  'Buenos Aires',
  'Mexico City',
  'Havana',
  'New York',
  'Los Angeles',
  'San Diego',
  'Portland',
  'Phoenix',
  'Dallas',
  'Houston',
  'Atlanta',
  'Nashville',
  'New Orleans',
  'Philadelphia',
  'Baltimore',
  'Pittsburgh',
  'Detroit',
  'Minneapolis',
  'Salt Lake City',
  'Las Vegas',
  'Honolulu',
  'Anchorage',
  'Montreal',
  'Quebec',
  'Edinburgh',
  'Glasgow',
  'Manchester',
  'Liverpool',
  'Bristol',
  'Oxford',
  'Cambridge',
  'Kyoto',
  'Osaka',
  'Marseille',
  'Lyon',
  'Seville',
  'Valencia',
  'Porto',
  'Krakow',
  'Riga',
];

/** Places kept for evaluation only. */
export const HELD_OUT_PLACES: readonly string[] = [
  'Reykjavik',
  'Santa Fe',
  'Kansas City',
  'Wellington',
  'Marrakesh',
  'Tallinn',
  'Oakland',
  'Sacramento',
];

const VERBS = ['eat', 'buy', 'find', 'watch', 'read', 'cook', 'share', 'order', 'draw', 'carry', 'try', 'bring', 'paint', 'rent', 'build'];
const VERBS2 = ['sit', 'walk', 'relax', 'read', 'sleep', 'dance', 'swim', 'rest', 'wander', 'talk', 'sing', 'run', 'think', 'play'];
const NOUNS = [
  'burrito',
  'pizza',
  'taco',
  'bagel',
  'pastry',
  'donut',
  'noodles',
  'salad',
  'book',
  'kite',
  'boat',
  'bicycle',
  'coffee',
  'lemonade',
  'picnic',
  'painting',
  'map',
  'postcard',
  'cake',
  'ice cream',
  'dumpling',
  'pretzel',
  'crepe',
  'waffle',
  'curry',
];
const SPOTS = ['Park', 'Square', 'Garden', 'Market', 'Harbor', 'Plaza', 'Beach', 'Museum', 'Library', 'Hill', 'Lake', 'Bridge'];
const TIMES = [
  'on a sunny day',
  'on a rainy afternoon',
  'in the early morning',
  'at sunset',
  'on a cold night',
  'on a windy day',
  'after lunch',
  'on the weekend',
  'in the spring',
  'during the summer',
  'on a quiet evening',
  'before dinner',
];

/** A random activity phrase: templated, or a run of random words (so copying cannot rely on templates). */
export function randomActivity(rng: Rng, words: readonly string[]): string {
  const a = () => (rng.next() < 0.5 ? 'a' : 'the');
  const spot = () => `${rng.next() < 0.4 ? pseudoName(rng) : capitalize(rng.pick(words))} ${rng.pick(SPOTS)}`;
  switch (rng.int(5)) {
    case 0:
      return `${rng.pick(VERBS)} ${a()} ${rng.pick(NOUNS)} and ${rng.pick(VERBS2)} in ${spot()} ${rng.pick(TIMES)}`;
    case 1:
      return `${rng.pick(VERBS2)} near ${spot()} ${rng.pick(TIMES)}`;
    case 2:
      return `${rng.pick(VERBS)} ${a()} ${rng.pick(words)} ${rng.pick(NOUNS)} at ${spot()}`;
    case 3:
      return `${rng.pick(VERBS)} ${a()} ${rng.pick(NOUNS)} with a ${rng.pick(words)} and ${rng.pick(VERBS2)} by ${spot()}`;
    default: {
      const n = 4 + rng.int(8);
      return Array.from({ length: n }, () => rng.pick(words)).join(' ');
    }
  }
}

/** A random place: a real city or an invented one. */
export function randomPlace(rng: Rng, words: readonly string[]): string {
  const r = rng.next();
  if (r < 0.3) return rng.pick(TRAIN_PLACES);
  if (r < 0.6) return pseudoName(rng);
  const w = capitalize(rng.pick(words));
  return rng.pick([w, `${w}ville`, `Port ${w}`, `${w} City`, `New ${w}`, `${w} Springs`]);
}

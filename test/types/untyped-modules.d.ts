// Packages the tests and the benchmark use that ship no type declarations: typed `any` where they are used.
declare module 'ws';
declare module 'autocannon';
